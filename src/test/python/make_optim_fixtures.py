#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/optim.json: what PyTorch and transformers compute for rlhf4j's optim package
(AdamW, GradClip, LrSchedule, Ema) on fixed small inputs, in float32 as training runs them.

Sections (each read by the test class of the same name in src/test/java/io/github/rlhf4j/optim/):
  adamw            torch.optim.AdamW over DeepSpeed-Chat's two parameter groups (decay / no decay), several steps,
                   a new gradient each step, the lr of a transformers schedule each step; torch's betas and
                   DeepSpeed-Chat's; a gradient scale (grads multiplied before the step); bf16 gradients applied to
                   fp32 master weights.
  adamw_gpt2       the same over a tiny transformers GPT2LMHeadModel, grouped by DeepSpeed-Chat's
                   get_optimizer_grouped_parameters, with two parameters frozen.
  dschat_groups    for tiny transformers models of several families: each parameter's name and its value after one
                   AdamW step from 1 with gradient 1 under DeepSpeed-Chat's grouping (which value it ends at says which
                   group it was in; frozen ones stay at 1).
  gradclip         torch.nn.utils.clip_grad_norm_ (returned norm, clipped grads) followed by torch.optim.AdamW.step.
  lr               transformers.get_scheduler(name, optimizer, warmup, total): the lr in optimizer.param_groups
                   before each optimizer.step(), stepping optimizer then scheduler as a training loop does.
  ema              DeepSpeed-Chat's moving_average: param_ema = torch.lerp(param, param_ema, beta) after each step.

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_optim_fixtures.py   (torch 2.x CPU, transformers)
"""
import json
import math
import os
import platform

import torch
import transformers
from transformers import get_scheduler

OUT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "optim.json")
gen = torch.Generator().manual_seed(20240611)
F32 = torch.float32


def randn(*shape, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=F32) * scale


def flat(t):
    """Exact values of a float32 (or bf16) tensor as a list of Python floats (doubles), row-major."""
    return [float(v) for v in t.detach().to(torch.float64).flatten().tolist()]


# ---- DeepSpeed-Chat's rules, written out from dschat/utils/utils.py ------------------------------------------------
DSCHAT_NO_DECAY = ["bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"]
DSCHAT_LORA = ["lora_right_weight", "lora_left_weight"]


def dschat_no_decay(name):
    # get_optimizer_grouped_parameters tests each pattern against n.lower()
    lower = name.lower()
    return any(pattern in lower for pattern in DSCHAT_NO_DECAY)


def dschat_groups(named_params, weight_decay):
    """get_optimizer_grouped_parameters: [decay (non-LoRA), decay (LoRA, own lr), no decay], trainable only, empty
    groups dropped. The test models have no LoRA parameters, so the middle group is always empty."""
    named = list(named_params)
    decay = [p for n, p in named if p.requires_grad and not dschat_no_decay(n)
             and not any(x in n.lower() for x in DSCHAT_LORA)]
    lora = [p for n, p in named if p.requires_grad and not dschat_no_decay(n)
            and any(x in n.lower() for x in DSCHAT_LORA)]
    no_decay = [p for n, p in named if p.requires_grad and dschat_no_decay(n)]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": lora, "weight_decay": weight_decay, "lr": 5e-4},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def moving_average(param, param_ema, beta):
    """DeepSpeed-Chat's moving_average for one tensor (zero stage < 3, same device)."""
    with torch.no_grad():
        param_ema.copy_(torch.lerp(param, param_ema, beta))


def scheduler_lrs(optimizer, name, warmup, total, steps):
    """The lr each optimizer.step() uses, as a training loop sees it: read, step the optimizer, step the schedule."""
    sched = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    return lrs


def schedule_lrs(base_lr, name, warmup, total, steps):
    dummy = torch.nn.Parameter(torch.zeros(1))
    return scheduler_lrs(torch.optim.SGD([dummy], lr=base_lr), name, warmup, total, steps)


# ---- AdamW over hand-made parameters -------------------------------------------------------------------------------
PARAMS = [  # name, shape, typical gradient magnitude
    ("dense.weight", (4, 5), 1.0),
    ("dense.bias", (5,), 0.1),
    ("layer_norm.weight", (5,), 0.03),
    ("layer_norm.bias", (5,), 2.0),
    ("out.weight", (5, 3), 0.005),
    ("wte.weight", (3, 4), 1e-8),  # gradients the size of eps: where eps goes in the denominator shows
]


def adamw_case(name, betas, weight_decay, base_lr, schedule, steps, grad_scale=1.0, grad_dtype="f32"):
    values = {n: randn(*s) for n, s, _ in PARAMS}
    for n in values:
        if "layer_norm.weight" in n:
            values[n] = values[n] * 0.1 + 1.0  # a norm weight starts near 1
    init = {n: v.clone() for n, v in values.items()}
    params = {n: torch.nn.Parameter(v.clone()) for n, v in values.items()}
    groups = dschat_groups(params.items(), weight_decay)
    opt = torch.optim.AdamW(groups, lr=base_lr, betas=betas, eps=1e-8)
    sched = get_scheduler(schedule[0], opt, num_warmup_steps=schedule[1], num_training_steps=schedule[2])
    out_steps = []
    for _ in range(steps):
        grads = {}
        for n, s, mag in PARAMS:
            g = randn(*s, scale=mag)
            if grad_dtype == "bf16":
                g = g.to(torch.bfloat16).to(F32)  # what a bf16 gradient holds, widened as the master step does
            grads[n] = g
        lr = opt.param_groups[0]["lr"]
        assert all(g["lr"] == lr for g in opt.param_groups)
        for n, p in params.items():
            # AdamW.step(lr, scale) multiplies the raw gradient by scale (rounded to f32) first
            p.grad = grads[n] * torch.tensor(grad_scale, dtype=F32) if grad_scale != 1.0 else grads[n].clone()
        opt.step()
        sched.step()
        out_steps.append({"lr": lr, "grads": [flat(grads[n]) for n, _, _ in PARAMS],
                          "params": [flat(params[n]) for n, _, _ in PARAMS]})
    moments = []
    for g in opt.param_groups:  # per group, params in group order, flattened and concatenated
        st = [opt.state[p] for p in g["params"]]
        moments.append({"weight_decay": g["weight_decay"],
                        "names": [n for n, p in params.items() if any(p is q for q in g["params"])],
                        "exp_avg": sum((flat(s["exp_avg"]) for s in st), []),
                        "exp_avg_sq": sum((flat(s["exp_avg_sq"]) for s in st), [])})
    return {"name": name, "betas": list(betas), "eps": 1e-8, "weight_decay": weight_decay, "base_lr": base_lr,
            "schedule": {"name": schedule[0], "warmup": schedule[1], "total": schedule[2]},
            "grad_scale": grad_scale, "grad_dtype": grad_dtype,
            "params": [{"name": n, "shape": list(s), "no_decay": dschat_no_decay(n), "init": flat(init[n])}
                       for n, s, _ in PARAMS],
            "steps": out_steps, "groups": moments}


adamw = [
    adamw_case("torch_betas_linear_warmup", (0.9, 0.999), 0.1, 1e-2, ("linear", 2, 8), 6),
    adamw_case("dschat_betas_cosine_warmup", (0.9, 0.95), 0.05, 3e-3, ("cosine", 1, 6), 6),
    adamw_case("dschat_betas_grad_scale", (0.9, 0.95), 0.1, 5e-3, ("constant_with_warmup", 2, 7), 6,
               grad_scale=0.37),
    adamw_case("torch_betas_loss_scale", (0.9, 0.999), 0.01, 1e-2, ("constant", 0, 5), 5, grad_scale=2.0 ** -10),
    adamw_case("dschat_betas_bf16_grads", (0.9, 0.95), 0.1, 1e-2, ("linear", 0, 6), 5, grad_dtype="bf16"),
]


# ---- AdamW over a tiny GPT-2 grouped as DeepSpeed-Chat groups it ---------------------------------------------------
def tiny_gpt2():
    cfg = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    torch.manual_seed(7)
    return cfg, transformers.GPT2LMHeadModel(cfg)


def adamw_gpt2():
    cfg, model = tiny_gpt2()
    frozen = ["transformer.wpe.weight", "transformer.h.0.ln_2.bias"]
    named = list(model.named_parameters())
    for n, p in named:
        if n in frozen:
            p.requires_grad_(False)
    init = {n: flat(p) for n, p in named}
    wd, base_lr, steps = 0.1, 1e-2, 4
    opt = torch.optim.AdamW(dschat_groups(named, wd), lr=base_lr, betas=(0.9, 0.95), eps=1e-8)
    sched = get_scheduler("cosine", opt, num_warmup_steps=1, num_training_steps=5)
    out = []
    for _ in range(steps):
        grads = {n: randn(*p.shape, scale=0.5) for n, p in named}
        for n, p in named:
            p.grad = grads[n].clone() if p.requires_grad else None
        total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=float("inf"))
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        out.append({"lr": lr, "grads": {n: flat(g) for n, g in grads.items()}, "grad_norm": float(total_norm),
                    "params": {n: flat(p) for n, p in named}})
    return {"config": {"vocab_size": cfg.vocab_size, "n_positions": cfg.n_positions, "n_embd": cfg.n_embd,
                       "n_layer": cfg.n_layer, "n_head": cfg.n_head},
            "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": wd, "frozen": frozen,
            "names": [n for n, _ in named], "shapes": {n: list(p.shape) for n, p in named},
            "no_decay": {n: dschat_no_decay(n) for n, _ in named},
            "init": init, "steps": out}


# ---- DeepSpeed-Chat's grouping over the parameter names of several model families ---------------------------------
def dschat_group_table():
    T = transformers
    models = {
        "gpt2": lambda: T.GPT2LMHeadModel(T.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                                       bos_token_id=0, eos_token_id=0)),
        "opt": lambda: T.OPTForCausalLM(T.OPTConfig(vocab_size=16, max_position_embeddings=8, hidden_size=8,
                                                    num_hidden_layers=1, num_attention_heads=2, ffn_dim=16,
                                                    word_embed_proj_dim=8)),
        "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16,
                                                          num_hidden_layers=1, num_attention_heads=2,
                                                          num_key_value_heads=2)),
        "bloom": lambda: T.BloomForCausalLM(T.BloomConfig(vocab_size=16, hidden_size=8, n_layer=1, n_head=2)),
        "gpt_neox": lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(vocab_size=16, hidden_size=8, intermediate_size=16,
                                                                 num_hidden_layers=1, num_attention_heads=2)),
        "bert": lambda: T.BertModel(T.BertConfig(vocab_size=16, hidden_size=8, intermediate_size=16,
                                                 num_hidden_layers=1, num_attention_heads=2,
                                                 max_position_embeddings=8)),
    }
    lr, wd = 0.1, 0.5
    table = []
    for family, make in models.items():
        names = [n for n, _ in make().named_parameters()]
        # Stand-ins of 3 elements under the real names (the grouping looks at names only), every 5th frozen.
        params = [(n, torch.nn.Parameter(torch.ones(3))) for n in names]
        frozen = [n for i, (n, _) in enumerate(params) if i % 5 == 3]
        for n, p in params:
            p.requires_grad_(n not in frozen)
            p.grad = torch.ones(3) if p.requires_grad else None
        opt = torch.optim.AdamW(dschat_groups(params, wd), lr=lr, betas=(0.9, 0.95), eps=1e-8)
        opt.step()
        after = []
        for n, p in params:
            assert bool((p == p[0]).all())
            after.append(float(p[0].detach()))
        table.append({"family": family, "names": names, "frozen": frozen, "after": after})
    return {"lr": lr, "weight_decay": wd, "betas": [0.9, 0.95], "eps": 1e-8, "models": table}


# ---- GradClip ------------------------------------------------------------------------------------------------------
def gradclip_case(name, max_norm, grad_scales, steps=3):
    shapes = [(4, 3), (7,), (2, 2, 2), (1,)]
    params = [torch.nn.Parameter(randn(*s)) for s in shapes]
    init = [flat(p) for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    out = []
    for k in range(steps):
        grads = [randn(*s, scale=grad_scales[k]) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        out.append({"grads": [flat(g) for g in grads], "norm": float(norm),
                    "clipped": [flat(p.grad) for p in params]})
        opt.step()
        out[-1]["params"] = [flat(p) for p in params]
    return {"name": name, "max_norm": max_norm, "shapes": [list(s) for s in shapes], "lr": 1e-2,
            "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "init": init, "steps": out}


def norm64(grads):
    """clip_grad_norm_'s total norm over float64 copies of the gradients."""
    ps = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
        p.grad = g.clone()
        ps.append(p)
    return float(torch.nn.utils.clip_grad_norm_(ps, 1.0))


def gradclip_cases():
    cases = [
        gradclip_case("clips_every_step", 1.0, [3.0, 1.0, 10.0]),
        gradclip_case("mixed_clip_and_pass", 2.5, [0.2, 2.0, 0.05]),
        gradclip_case("never_clips", 1e3, [1.0, 0.5, 2.0]),
        # norms near 0.1: clip_grad_norm_'s + 1e-6 changes the coefficient by ~1e-5 relative, which the tests see
        gradclip_case("clips_small_norms", 0.03, [0.02, 0.015, 0.03]),
    ]
    for c in cases:
        for s in c["steps"]:
            s["norm_f64"] = norm64([torch.tensor(g, dtype=torch.float64) for g in s["grads"]])
    return cases


# ---- LrSchedule ----------------------------------------------------------------------------------------------------
def lr_cases():
    combos = {
        "linear": [(0, 10), (3, 10), (10, 10), (0, 1), (1, 1), (5, 12)],
        "cosine": [(0, 10), (3, 10), (10, 10), (0, 1), (1, 1), (7, 25)],
        "constant": [(0, 5), (3, 10)],
        "constant_with_warmup": [(0, 6), (4, 10), (1, 3), (9, 9)],
    }
    base = 5e-5
    out = []
    for name, pairs in combos.items():
        for warmup, total in pairs:
            out.append({"name": name, "warmup": warmup, "total": total, "base_lr": base,
                        "lrs": schedule_lrs(base, name, warmup, total, total + 4)})
    return out


# ---- Ema -----------------------------------------------------------------------------------------------------------
def ema_cases():
    out = []
    for beta in [0.992, 0.9, 0.3, 1.0, 0.0]:
        param = randn(37)
        start = flat(param)
        ema = param.clone()
        steps = []
        for _ in range(8):
            param = param + randn(37, scale=0.3)
            moving_average(param, ema, beta)
            steps.append({"source": flat(param), "shadow": flat(ema)})
        out.append({"beta": beta, "init": start, "steps": steps})
    return out


fixture = {
    "generator": "src/test/python/make_optim_fixtures.py",
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                 "python": platform.python_version()},
    "adamw": adamw,
    "adamw_gpt2": adamw_gpt2(),
    "dschat_groups": dschat_group_table(),
    "gradclip": gradclip_cases(),
    "lr": lr_cases(),
    "ema": ema_cases(),
}

with open(OUT, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT) / 1024:.0f} KiB)")
