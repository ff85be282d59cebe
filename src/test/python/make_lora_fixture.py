#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/lora/: DeepSpeed-Chat's LoRA (dschat/utils/module/lora.py) run in PyTorch
(float64) on tiny random OPT and GPT-2 models, for rlhf4j's nn.Lora (io.github.rlhf4j.nn.LoraTorchParityTest).

  opt/, gpt2/          the base models as Hugging Face directories (save_pretrained, float32 weights drawn so that a
                       float32 and a float64 load see the same values), without adapters
  expected.json        settings, the batch, losses, gradient norms, kaiming bound; per model the adapter names
  expected.safetensors float64 tensors, names prefixed by the model ("opt." / "gpt2."):
      init.<param>       the adapters the runs start from: lora_right_weight drawn as kaiming_uniform_(a=sqrt(5))
                         draws it, lora_left_weight NOT zero (as after some training; DS-Chat's zero init would make
                         the low-rank term and lora_right_weight's gradient vanish and test nothing)
      logits             [B, T, V] of the LoRA model
      grad.<param>       the gradient of every trainable parameter after backward of the causal-LM loss
      fused.<param>      the weights after convert_lora_to_linear_layer, for every layer that had an adapter
      fusedLogits        the logits of the fused model saved by save_hf_format (no lora keys) and reloaded in
                         transformers as a plain model
      step1.<param>, step2.<param>  (OPT) every trainable parameter after one and two optimizer steps
      onlyLora.<param>   (OPT) the adapters after one step with only_optimize_lora_parameters

OPT gets DS-Chat's LinearLayer_LoRA on every nn.Linear whose name contains "decoder.layers." (DS-Chat's default
lora_module_name for OPT), lora_dim 2. GPT-2 gets the same math on its Conv1D layers ("h."), an rlhf4j extension
(DS-Chat converts nn.Linear only): Conv1DLayer_LoRA below, weight [in, out], fused as W += scaling * (R @ L).

The optimizer is DS-Chat's: torch.optim.AdamW(betas=(0.9, 0.95), eps=1e-8) over
get_optimizer_grouped_parameters(model, weight_decay, lora_lr) (three groups: lr, lora_lr, no decay), transformers'
get_scheduler("cosine", warmup 0, 4 steps) (LambdaLR: each group's lr = its base lr * factor; the second step's factor
is 0.854), and DeepSpeed's gradient clipping (torch.nn.utils.clip_grad_norm_ before the step) at 1.0. Two steps on the
same batch. The only-LoRA run takes one step at a constant schedule.

The DeepSpeed-Chat code below is copied VERBATIM from DeepSpeedExamples (Apache-2.0, Copyright (c) Microsoft
Corporation), applications/DeepSpeed-Chat/:
  dschat/utils/module/lora.py  (commit e86d0c6d38d65158836c275e2d7b6a8f8e92f026) LinearLayer_LoRA,
                               convert_linear_layer_to_lora, convert_lora_to_linear_layer,
                               only_optimize_lora_parameters
  dschat/utils/utils.py        (commit d3aabe3b5a9a8444ddd514ba92558a4d7614c183) get_optimizer_grouped_parameters,
                               save_hf_format's removal of the lora keys
Lines changed are marked "# rlhf4j:" (deepspeed's recursive_getattr/recursive_setattr and ZeRO-3 gathering are
replaced by plain equivalents, since DeepSpeed is not imported).

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_lora_fixture.py
"""
import copy
import json
import math
import os
import shutil

import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM, get_scheduler
from transformers.pytorch_utils import Conv1D
from dschat_reference import get_optimizer_grouped_parameters  # verbatim DS-Chat, shared by the generators

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "fixtures", "lora")
LORA_DIM = 2
LR, LORA_LR, WEIGHT_DECAY, MAX_GRAD_NORM = 1e-2, 3e-3, 0.1, 1.0
TOTAL_STEPS = 4


# rlhf4j: deepspeed.compression.helper's recursive_getattr / recursive_setattr
def recursive_getattr(model, module_name):
    for name in module_name.split("."):
        model = getattr(model, name)
    return model


def recursive_setattr(model, module_name, module):
    parent, _, last = module_name.rpartition(".")
    setattr(recursive_getattr(model, parent) if parent else model, last, module)


# ==== verbatim from dschat/utils/module/lora.py =====================================================================
class LinearLayer_LoRA(nn.Module):
    # an simple implementation of LoRA
    # for now only support Linear Layer
    def __init__(self,
                 weight,
                 lora_dim=0,
                 lora_scaling=1,
                 lora_droppout=0,
                 bias=None):
        super(LinearLayer_LoRA, self).__init__()
        self.weight = weight
        self.bias = bias

        if lora_dim <= 0:
            raise ValueError(
                "You are training to use LoRA, whose reduced dim should be larger than 1"
            )

        try:
            # for zero stage 3
            rows, columns = weight.ds_shape
        except:
            rows, columns = weight.shape
        self.lora_right_weight = nn.Parameter(torch.zeros(
            columns,
            lora_dim))  # apply transpose so in forward we do not need to
        self.lora_left_weight = nn.Parameter(torch.zeros(lora_dim, rows))
        self.lora_scaling = lora_scaling / lora_dim

        if lora_droppout > 0:
            self.lora_dropout = nn.Dropout(lora_droppout)
        else:
            self.lora_dropout = nn.Identity()

        self.reset_parameters()
        # disable the original weight gradient
        self.weight.requires_grad = False
        # fuse LoRA to the original weight
        self.fuse_lora = False

    def eval(self):
        self.lora_dropout.eval()

    #   self.fuse_lora_weight()

    def train(self, mode=True):
        self.lora_dropout.train(mode)
        # self.unfuse_lora_weight()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.lora_right_weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_left_weight)

    def fuse_lora_weight(self):
        if not self.fuse_lora:
            self.weight.data += self.lora_scaling * torch.matmul(
                self.lora_left_weight.t(), self.lora_right_weight.t())
        self.fuse_lora = True

    def unfuse_lora_weight(self):
        if self.fuse_lora:
            self.weight.data -= self.lora_scaling * torch.matmul(
                self.lora_left_weight.t(), self.lora_right_weight.t())
        self.fuse_lora = False

    def forward(self, input):
        if self.fuse_lora:
            return F.linear(input, self.weight, self.bias)
        else:
            return F.linear(
                input, self.weight,
                self.bias) + (self.lora_dropout(input) @ self.lora_right_weight
                              @ self.lora_left_weight) * self.lora_scaling


# convert the linear layer to LoRA
def convert_linear_layer_to_lora(model,
                                 part_module_name,
                                 lora_dim=0,
                                 lora_scaling=1,
                                 lora_droppout=0):
    replace_name = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and part_module_name in name:
            replace_name.append(name)
    for name in replace_name:
        module = recursive_getattr(model, name)
        tmp = LinearLayer_LoRA(
            module.weight, lora_dim, lora_scaling, lora_droppout,
            module.bias).to(module.weight.device).to(module.weight.dtype)
        recursive_setattr(model, name, tmp)
    return model


# convert the LoRA layer to linear layer
def convert_lora_to_linear_layer(model):
    replace_name = []
    for name, module in model.named_modules():
        if isinstance(module, LinearLayer_LoRA):
            replace_name.append(name)
    for name in replace_name:
        module = recursive_getattr(model, name)
        # rlhf4j: no ZeRO-3 parameters to gather (deepspeed.zero.GatheredParameters(..., enabled=False))
        module.fuse_lora_weight()
    return model


def only_optimize_lora_parameters(model, force_optimize_params=[]):
    # turn off the gradient of all the parameters except the LoRA parameters
    for name, param in model.named_parameters():
        if "lora_right_weight" in name or "lora_left_weight" in name or name in force_optimize_params:
            param.requires_grad = True
        else:
            param.requires_grad = False
    return model




def save_hf_format_state_dict(model):
    # rlhf4j: save_hf_format's state dict, without writing pytorch_model.bin
    save_dict = model.state_dict()
    for key in list(save_dict.keys()):
        if "lora" in key:
            del save_dict[key]
    return save_dict


# ==== rlhf4j's extension: the same adapter on GPT-2's Conv1D (weight [in, out]) =====================================
class Conv1DLayer_LoRA(LinearLayer_LoRA):
    def __init__(self, weight, lora_dim, bias):
        nn.Module.__init__(self)
        self.weight, self.bias = weight, bias
        columns, rows = weight.shape  # [in, out]
        self.lora_right_weight = nn.Parameter(torch.zeros(columns, lora_dim, dtype=weight.dtype))
        self.lora_left_weight = nn.Parameter(torch.zeros(lora_dim, rows, dtype=weight.dtype))
        self.lora_scaling = 1 / lora_dim
        self.lora_dropout = nn.Identity()
        self.reset_parameters()
        self.weight.requires_grad = False
        self.fuse_lora = False

    def fuse_lora_weight(self):
        if not self.fuse_lora:
            self.weight.data += self.lora_scaling * torch.matmul(self.lora_right_weight, self.lora_left_weight)
        self.fuse_lora = True

    def forward(self, input):
        y = torch.addmm(self.bias, input.reshape(-1, input.size(-1)), self.weight).view(
            *input.shape[:-1], self.weight.size(1))
        if self.fuse_lora:
            return y
        return y + (input @ self.lora_right_weight @ self.lora_left_weight) * self.lora_scaling


def convert_conv1d_layer_to_lora(model, part_module_name, lora_dim):
    names = [n for n, m in model.named_modules() if isinstance(m, Conv1D) and part_module_name in n]
    for name in names:
        module = recursive_getattr(model, name)
        recursive_setattr(model, name, Conv1DLayer_LoRA(module.weight, lora_dim, module.bias))
    return model


# ==== the runs ======================================================================================================
def randomise(model, gen):
    """Redraws every parameter in float32: norms' weights 1 + 0.2 N, biases 0.1 N, matrices and embeddings 0.3 N."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith(".weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.3 * torch.randn(p.shape, generator=gen)
            p.copy_(v.float())


def draw_adapters(model, gen):
    """Adapters as kaiming_uniform_ draws R (float32 values), and a non-zero L (0.5 N, float32)."""
    init = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_right_weight"):
                bound = 1 / math.sqrt(p.shape[1])  # kaiming_uniform_(a=sqrt(5)) with fan_in = size(1) = r
                p.copy_(((torch.rand(p.shape, generator=gen) * 2 - 1) * bound).float())
            elif name.endswith("lora_left_weight"):
                p.copy_((0.5 * torch.randn(p.shape, generator=gen)).float())
            else:
                continue
            init[name] = p.detach().clone()
    return init


def lm_loss(model, ids, labels):
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)
    return logits, loss


def train_step(model, optimizer, scheduler, ids, labels):
    _, loss = lm_loss(model, ids, labels)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return loss.item(), norm.item()


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def run(case, cls, config, module_name, convert, seed, tensors, meta, with_steps):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    base = cls(config).float().eval()
    randomise(base, gen)
    out = os.path.join(OUT, case)
    if os.path.exists(out):
        shutil.rmtree(out)
    base.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(out):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(out, f))

    b, t = 2, 6
    ids = torch.randint(3, config.vocab_size, (b, t), generator=gen)
    labels = ids.clone()
    labels[1, :2] = -100  # a prompt that takes no loss

    def lora_model():
        m = cls.from_pretrained(out, attn_implementation="sdpa").double()
        m.train()  # dropout is 0; DS-Chat trains in train mode
        convert(m, module_name, LORA_DIM)
        return m

    model = lora_model()
    init = draw_adapters(model, gen)
    lora_names = list(init)
    for n, v in init.items():
        tensors[f"{case}.init.{n}"] = v

    logits, loss = lm_loss(model, ids, labels)
    loss.backward()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.endswith(".weight") and "lora" not in n for n in frozen), frozen
    for n, p in model.named_parameters():
        if p.requires_grad:
            tensors[f"{case}.grad.{n}"] = p.grad.detach().clone()
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.requires_grad)).item()
    tensors[f"{case}.logits"] = logits.detach().clone()
    kbias = [n for n, p in model.named_parameters() if p.requires_grad and "k_proj.bias" in n]
    for n in kbias:  # zero in exact arithmetic: a key bias shifts a query's scores equally
        assert tensors[f"{case}.grad.{n}"].abs().max() < 1e-12

    fused = copy.deepcopy(model)
    fused.eval()
    convert_lora_to_linear_layer(fused)
    state = save_hf_format_state_dict(fused)
    assert not any("lora" in k for k in state)
    adapted = sorted({n.rsplit(".", 1)[0] + ".weight" for n in lora_names})
    for n in adapted:
        tensors[f"{case}.fused.{n}"] = state[n].detach().clone()
    plain = cls.from_pretrained(out, attn_implementation="sdpa").double().eval()
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
    with torch.no_grad():
        fused_logits = plain(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    tensors[f"{case}.fusedLogits"] = fused_logits.clone()
    print(f"{case}: fused vs LoRA logits differ by {(fused_logits - logits).abs().max().item():.2e}")

    entry = {
        "moduleName": module_name, "loraDim": LORA_DIM, "scaling": 1.0 / LORA_DIM,
        "inputIds": ids.flatten().tolist(), "labels": labels.flatten().tolist(), "shape": [b, t],
        "loss": loss.item(), "gradNorm": grad_norm, "loraParameters": lora_names, "adaptedWeights": adapted,
        "frozen": frozen, "zeroGradient": kbias,
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
    }

    if with_steps:
        model = lora_model()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in init:
                    p.copy_(init[n])
        groups = get_optimizer_grouped_parameters(model, WEIGHT_DECAY, LORA_LR)
        assert len(groups) == 3 and groups[1]["lr"] == LORA_LR
        names_of = {id(p): n for n, p in model.named_parameters()}
        entry["groups"] = [[names_of[id(p)] for p in g["params"]] for g in groups]
        opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), eps=1e-8)
        sched = get_scheduler("cosine", optimizer=opt, num_warmup_steps=0, num_training_steps=TOTAL_STEPS)
        steps = []
        for k in (1, 2):
            lrs = [g["lr"] for g in opt.param_groups]
            l, norm = train_step(model, opt, sched, ids, labels)
            steps.append({"loss": l, "gradNorm": norm, "groupLrs": lrs})
            for n, v in trainable(model).items():
                tensors[f"{case}.step{k}.{n}"] = v
        entry["steps"] = steps

        model = lora_model()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in init:
                    p.copy_(init[n])
        only_optimize_lora_parameters(model)
        groups = get_optimizer_grouped_parameters(model, WEIGHT_DECAY, LORA_LR)
        assert len(groups) == 1 and groups[0]["lr"] == LORA_LR
        opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), eps=1e-8)
        sched = get_scheduler("constant", optimizer=opt)
        l, norm = train_step(model, opt, sched, ids, labels)
        entry["onlyLora"] = {"loss": l, "gradNorm": norm,
                             "trainable": [n for n, p in model.named_parameters() if p.requires_grad]}
        for n in lora_names:
            tensors[f"{case}.onlyLora.{n}"] = dict(model.named_parameters())[n].detach().clone()
    meta[case] = entry


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tensors, meta = {}, {}
    opt = OPTConfig(vocab_size=24, hidden_size=8, num_hidden_layers=2, ffn_dim=16, num_attention_heads=2,
                    max_position_embeddings=16, word_embed_proj_dim=8, dropout=0.0, attention_dropout=0.0,
                    layerdrop=0.0, activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2)
    run("opt", OPTForCausalLM, opt, "decoder.layers.", convert_linear_layer_to_lora, 20250301, tensors, meta, True)
    gpt2 = GPT2Config(vocab_size=24, n_positions=16, n_embd=8, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    run("gpt2", GPT2LMHeadModel, gpt2, "h.", convert_conv1d_layer_to_lora, 20250302, tensors, meta, False)

    probe = torch.empty(1000, LORA_DIM)
    nn.init.kaiming_uniform_(probe, a=math.sqrt(5))
    gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    expected = {
        "generator": "src/test/python/make_lora_fixture.py",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "lr": LR, "loraLr": LORA_LR, "weightDecay": WEIGHT_DECAY, "maxGradNorm": MAX_GRAD_NORM,
        "schedule": {"name": "cosine", "warmup": 0, "total": TOTAL_STEPS},
        # torch's kaiming_uniform_(a=sqrt(5)) bound for a [in, r] tensor: gain * sqrt(3 / fan_in), fan_in = r
        "kaimingBound": gain * math.sqrt(3.0 / LORA_DIM), "kaimingProbeMax": probe.abs().max().item(),
        **meta,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()},
                                os.path.join(OUT, "expected.safetensors"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {len(tensors)} tensors, {total} bytes")


if __name__ == "__main__":
    main()
