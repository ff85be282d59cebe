#!/usr/bin/env python3
"""The PyTorch peer of `rlhf4j bench step3`: one DeepSpeed-Chat step-3 iteration in plain PyTorch + transformers, with
DS-Chat's own step-3 math (dschat/rlhf/ppo_trainer.py, dschat/utils/model/reward_model.py) on the same random-weight
OPT shapes (the config.json files rlhf4j ships), the same batch, prompt and answer lengths, fp32, dropout 0 and the
same thread count. Prints the same table fields and, last, one JSON line with the same keys as `bench step3 --json`.

    python3 bench/peers/step3_torch.py --actor opt-125m --critic opt-125m --batch 4 --prompt-len 64 --answer-len 64 \
        --threads 2 --iters 3 --warmup 1

An iteration: generate (HF generate, sampling at temperature 1, top-p 1, no top-k, min_new_tokens = max_new_tokens so
every answer has exactly --answer-len tokens) under no_grad; actor and reference logprobs, the reward model's end
score, the critic's values (generate_experience); KL-penalised rewards (kl_ctl 0.1, clip 5), GAE (gamma 1, lambda
0.95); the clipped actor loss (0.2), backward, clip to norm 1, AdamW step; the clipped critic loss (0.2), backward,
clip, AdamW step (train_rlhf). AdamW: betas (0.9, 0.95), eps 1e-8, weight decay 0 in DS-Chat's two groups, lr
9.65e-6 / 5e-6 under a cosine schedule with 100 warm-up steps. Not part of rlhf4j's build or tests.
"""
import argparse, copy, json, math, os, statistics, sys, time

import torch
import torch.nn.functional as F
from transformers import OPTConfig, OPTForCausalLM, OPTModel, get_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "src/main/resources/io/github/rlhf4j/bench/configs")
PRESETS = ["tiny", "opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-66b"]
EPOCH_PAIRS = 264292
KL_CTL, CLIP_REWARD, CLIPRANGE, CLIPRANGE_VALUE, GAMMA, LAM = 0.1, 5.0, 0.2, 0.2, 1.0, 0.95


def canonical(name):
    n = name.strip().lower()
    n = n[len("facebook/"):] if n.startswith("facebook/") else n
    n = "tiny" if n == "opt-tiny" else n
    if n != "tiny" and not n.startswith("opt-"):
        n = "opt-" + n
    return n if n in PRESETS else None


def load_config(name):
    preset = canonical(name)
    path = os.path.join(CONFIGS, preset + ".json") if preset else name
    with open(path) as f:
        d = json.load(f)
    d = {k: v for k, v in d.items() if not k.startswith("_name_or_path")}
    d.update(dropout=0.0, activation_dropout=0.0, attention_dropout=0.0, layerdrop=0.0)
    return OPTConfig(**d), (preset or path)


class RewardModel(torch.nn.Module):
    """DS-Chat's RewardModel: the base model and a bias-free v_head on word_embed_proj_dim."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.rwtranrsformer = OPTModel(config)
        self.v_head = torch.nn.Linear(config.word_embed_proj_dim, 1, bias=False)
        self.PAD_ID = config.pad_token_id

    def forward_value(self, input_ids, attention_mask, return_value_only=False, prompt_length=0):
        hidden = self.rwtranrsformer(input_ids, attention_mask=attention_mask, use_cache=False)[0]
        values = self.v_head(hidden).squeeze(-1)
        if return_value_only:
            return values
        seq_len = input_ids.shape[1]
        chosen_end_scores = []
        for i in range(values.size(0)):
            c_inds = (input_ids[i][prompt_length:] == self.PAD_ID).nonzero()
            c_ind = c_inds[0].item() + prompt_length if len(c_inds) > 0 else seq_len
            chosen_end_scores.append(values[i][c_ind - 1])
        return {"values": values, "chosen_end_scores": torch.stack(chosen_end_scores)}


def gather_log_probs(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1)
    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


def optimizer(model, lr, total_steps):
    # DS-Chat's get_optimizer_grouped_parameters: biases and LayerNorm weights without weight decay (0 either way)
    no_decay = ["bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
               "weight_decay": 0.0},
              {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)
    return opt, get_scheduler("cosine", optimizer=opt, num_warmup_steps=100, num_training_steps=total_steps)


def compute_rewards(prompts, log_probs, ref_log_probs, reward_score, action_mask):
    rewards = -KL_CTL * (log_probs - ref_log_probs)
    start = prompts.shape[1] - 1
    ends = start + action_mask[:, start:].sum(1) + 1
    reward_clip = torch.clamp(reward_score, -CLIP_REWARD, CLIP_REWARD)
    for j in range(log_probs.shape[0]):
        rewards[j, start:ends[j]][-1] += reward_clip[j]
    return rewards


def advantages_and_returns(values, rewards, start):
    lastgaelam = 0
    advantages_reversed = []
    length = rewards.size()[-1]
    for t in reversed(range(start, length)):
        nextvalues = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + GAMMA * nextvalues - values[:, t]
        lastgaelam = delta + GAMMA * LAM * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    return advantages.detach(), advantages + values[:, start:]


def actor_loss_fn(logprobs, old_logprobs, advantages, mask):
    ratio = torch.exp((logprobs - old_logprobs) * mask)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - CLIPRANGE, 1.0 + CLIPRANGE)
    return torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()


def critic_loss_fn(values, old_values, returns, mask):
    values_clipped = torch.clamp(values, old_values - CLIPRANGE_VALUE, old_values + CLIPRANGE_VALUE)
    vf_loss1 = (values - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    return 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()


# ---- the floor of performance.md (the same formula as io.github.rlhf4j.bench.Step3Floor) ----------------------------

def shape(cfg, params, lm_head):
    h, f, L, e, v = cfg.hidden_size, cfg.ffn_dim, cfg.num_hidden_layers, cfg.word_embed_proj_dim, cfg.vocab_size
    blocks = L * (4 * h * h + 2 * h * f) + (2 * h * e if e != h else 0)
    head = v * e if lm_head else 0
    return dict(params=params, matmul=blocks + (head if lm_head else e), head=head, hidden=h, layers=L)


def floor(machine, actor, critic, b, p, a):
    flops, bw, wb, kvb = machine["flops"], machine["bw"], machine["weight_bytes"], machine["kv_bytes"]
    attn = lambda s, t: 4.0 * (t / 2.0) * s["hidden"] * s["layers"]
    prefill = b * p * (2.0 * (actor["matmul"] - actor["head"]) + attn(actor, p)) / flops
    decode = 0.0
    for k in range(a):
        ctx = p + k
        fl = b * (2.0 * actor["matmul"] + 4 * ctx * actor["hidden"] * actor["layers"])
        by = wb * actor["params"] + b * ctx * 2 * kvb * actor["hidden"] * actor["layers"]
        decode += max(fl / flops, by / bw)
    t = p + a
    fa = b * t * (2.0 * actor["matmul"] + attn(actor, t)) / flops
    fc = b * t * (2.0 * critic["matmul"] + attn(critic, t)) / flops
    phases = dict(generation=prefill + decode, experience=2 * fa + 2 * fc,
                  actor_training=3 * fa + 28 * actor["params"] / bw, critic_training=3 * fc + 28 * critic["params"] / bw)
    it = sum(phases.values())
    return dict(machine=machine["name"], phases=phases, iter_s=it, ms_per_seq=it / b * 1e3,
                hours_per_epoch=math.ceil(EPOCH_PAIRS / b) * it / 3600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actor", default="opt-1.3b")
    ap.add_argument("--critic", default="opt-350m")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--answer-len", type=int, default=256)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--peak-gflops", type=float, default=232.0)
    ap.add_argument("--peak-gbs", type=float, default=0.0)
    ap.add_argument("--json", help="also write the JSON object to this file")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    B, P, A = a.batch, a.prompt_len, a.answer_len
    log = lambda *x: print(*x, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    acfg, aname = load_config(a.actor)
    ccfg, cname = load_config(a.critic)
    actor = OPTForCausalLM(acfg).to(dev)
    ref = copy.deepcopy(actor).eval()
    critic = RewardModel(ccfg).to(dev)
    reward = copy.deepcopy(critic).eval()
    for m in (ref, reward):
        m.requires_grad_(False)
    steps = max(100, math.ceil(EPOCH_PAIRS / B))
    actor_opt, actor_sched = optimizer(actor, 9.65e-6, steps)
    critic_opt, critic_sched = optimizer(critic, 5e-6, steps)
    pad, eos = acfg.pad_token_id, acfg.eos_token_id
    init_s = time.perf_counter() - t0
    log(f"models ready in {init_s:.2f} s: actor {aname}, critic {cname} on {dev}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads")
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(a.seed)

    times, splits = [], []
    for i in range(a.warmup + a.iters):
        ph = dict(generation=0.0, experience=0.0, actor_training=0.0, critic_training=0.0)
        start = time.perf_counter()
        # prompts: exactly P random ordinary tokens (ids 0-3 are OPT's specials), no padding
        prompts = torch.randint(4, min(acfg.vocab_size, 50265), (B, P), generator=gen).to(dev)
        mask = torch.ones_like(prompts)

        # ---- generate_experience ----
        t = time.perf_counter()
        actor.eval()
        with torch.no_grad():
            seq = actor.generate(prompts, attention_mask=mask, max_new_tokens=A, min_new_tokens=A, do_sample=True,
                                 temperature=1.0, top_k=0, top_p=1.0, pad_token_id=pad, eos_token_id=eos)
        # DS-Chat drops rows whose answer has <= 1 valid token
        valid = (seq[:, P:] != pad).sum(dim=-1)
        keep = valid > 1
        seq = seq[keep]
        sync()
        ph["generation"] += time.perf_counter() - t
        if seq.shape != (B, P + A):
            raise SystemExit(f"generation gave {tuple(seq.shape)}, not {(B, P + A)}")
        t = time.perf_counter()
        attention_mask = seq.not_equal(pad).long()
        critic.eval()
        with torch.no_grad():
            output = actor(seq, attention_mask=attention_mask)
            output_ref = ref(seq, attention_mask=attention_mask)
            reward_score = reward.forward_value(seq, attention_mask, prompt_length=P)["chosen_end_scores"].detach()
            values = critic.forward_value(seq, attention_mask, return_value_only=True).detach()[:, :-1]
        exp = dict(prompts=prompts, logprobs=gather_log_probs(output.logits[:, :-1, :], seq[:, 1:]),
                   ref_logprobs=gather_log_probs(output_ref.logits[:, :-1, :], seq[:, 1:]), value=values,
                   rewards=reward_score, input_ids=seq, attention_mask=attention_mask)
        del output, output_ref
        sync()
        ph["experience"] += time.perf_counter() - t

        # ---- train_rlhf ----
        t = time.perf_counter()
        actor.train()
        critic.train()
        start_col = exp["prompts"].size()[-1] - 1
        action_mask = exp["attention_mask"][:, 1:]
        old_values = exp["value"]
        with torch.no_grad():
            old_rewards = compute_rewards(exp["prompts"], exp["logprobs"], exp["ref_logprobs"], exp["rewards"],
                                          action_mask)
            ends = start_col + action_mask[:, start_col:].sum(1) + 1
            for j in range(old_rewards.shape[0]):
                old_rewards[j, ends[j]:] = 0
                old_values[j, ends[j]:] = 0
            advantages, returns = advantages_and_returns(old_values, old_rewards, start_col)
        batch = {"input_ids": seq, "attention_mask": attention_mask}
        actor_logits = actor(**batch, use_cache=False).logits
        actor_log_prob = gather_log_probs(actor_logits[:, :-1, :], seq[:, 1:])
        actor_loss = actor_loss_fn(actor_log_prob[:, start_col:], exp["logprobs"][:, start_col:], advantages,
                                   action_mask[:, start_col:])
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
        actor_opt.step()
        actor_sched.step()
        actor_opt.zero_grad(set_to_none=False)
        del actor_logits, actor_log_prob
        actor_loss = actor_loss.item()
        sync()
        ph["actor_training"] += time.perf_counter() - t
        t = time.perf_counter()
        value = critic.forward_value(**batch, return_value_only=True)[:, :-1]
        critic_loss = critic_loss_fn(value[:, start_col:], old_values[:, start_col:], returns,
                                     action_mask[:, start_col:])
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        critic_opt.step()
        critic_sched.step()
        critic_opt.zero_grad(set_to_none=False)
        critic_loss = critic_loss.item()
        sync()
        ph["critic_training"] += time.perf_counter() - t
        it = time.perf_counter() - start
        ph["other"] = it - sum(ph.values())
        warm = i < a.warmup
        if not warm:
            times.append(it)
            splits.append(ph)
        log(f"{'warm-up' if warm else 'iteration'} {i + 1 if warm else i - a.warmup + 1}/"
            f"{a.warmup if warm else a.iters}: {it:.3f} s (generation {ph['generation']:.3f}, experience "
            f"{ph['experience']:.3f}, actor {ph['actor_training']:.3f}, critic {ph['critic_training']:.3f}, "
            f"other {ph['other']:.3f}); actor loss {actor_loss:.4f}, critic loss {critic_loss:.4f}")

    order = sorted(range(len(times)), key=lambda k: times[k])
    mid = order[(len(order) - 1) // 2]
    it, ph = times[mid], splits[mid]
    n_actor = sum(p.numel() for p in actor.parameters())
    n_critic = sum(p.numel() for p in critic.parameters())
    sa, sc = shape(acfg, n_actor, True), shape(ccfg, n_critic, False)
    machines = [dict(name="H100 80GB, bf16 (798 TFLOP/s, 3.0 TB/s)", flops=798e12, bw=3.0e12, weight_bytes=2,
                     kv_bytes=2)]
    if dev.type == "cpu":
        bw = "%.0f GB/s" % a.peak_gbs if a.peak_gbs > 0 else "compute only"
        machines.append(dict(name="this CPU, f32 (%.0f GFLOP/s, %s)" % (a.peak_gflops, bw), flops=a.peak_gflops * 1e9,
                             bw=a.peak_gbs * 1e9 if a.peak_gbs > 0 else math.inf, weight_bytes=4, kv_bytes=4))
    floors = [floor(m, sa, sc, B, P, A) for m in machines]
    hours = (math.ceil(EPOCH_PAIRS / B) * it + init_s) / 3600

    print("torch peer of bench step3: one DeepSpeed-Chat step-3 iteration (DS-Chat's math, transformers "
          + __import__("transformers").__version__ + ", torch " + torch.__version__ + ")")
    print(f"  actor  {aname:<9} {n_actor:>15,} parameters (OPTForCausalLM, random init, dropout 0)")
    print(f"  critic {cname:<9} {n_critic:>15,} parameters (OPTModel + v_head; reward model the same)")
    print(f"  batch {B}, prompt {P} + answer {A} tokens (min_new_tokens = max_new_tokens), 1 PPO epoch, sampling "
          f"(temperature 1, top-p 1)")
    print(f"  device {dev}, {torch.get_num_threads()} threads, fp32")
    print(f"  start-up {init_s:.2f} s; {a.warmup} warm-up + {a.iters} timed iterations (s): "
          + ", ".join("%.4g" % x for x in times))
    print()
    head = "%-22s %10s %7s" % ("phase", "s/iter", "share")
    for k, f in enumerate(floors):
        head += " %12s %8s" % ("floor H100" if k == 0 else "floor CPU", "% floor")
    print(head)
    rows = [("generation", "generation"), ("experience forwards", "experience"), ("actor training", "actor_training"),
            ("critic training", "critic_training"), ("other", "other")]
    for label, key in rows:
        line = "%-22s %10.4g %6.1f%%" % (label, ph[key], 100 * ph[key] / it)
        for f in floors:
            fv = f["phases"].get(key, 0.0)
            line += (" %12.4g %7.2g%%" % (fv, 100 * fv / ph[key])) if fv > 0 else " %12s %8s" % ("-", "-")
        print(line)
    line = "%-22s %10.4g %6.1f%%" % ("iteration (median)", it, 100.0)
    for f in floors:
        line += " %12.4g %7.2g%%" % (f["iter_s"], 100 * f["iter_s"] / it)
    print(line)
    print()
    print(f"sequences/s        {B / it:.4g}")
    print(f"tokens/s           {B * (P + A) / it:.4g} (prompt + answer)")
    print(f"hours/epoch        {hours:.4g} = ceil(264292 / {B}) x {it:.4g} s + {init_s:.1f} s start-up")
    for f in floors:
        print(f"floor              {f['machine']}: {f['iter_s']:.4g} s/iter = {f['ms_per_seq']:.4g} ms/seq, "
              f"{f['hours_per_epoch']:.4g} h/epoch; this run reaches {100 * f['iter_s'] / it:.2g}% of it")
    out = dict(impl="torch", torch=torch.__version__, actor=aname, critic=cname, actor_params=n_actor,
               critic_params=n_critic, batch=B, prompt_len=P, answer_len=A, device=str(dev),
               threads=torch.get_num_threads(), dtype="f32", warmup=a.warmup, iters=a.iters, init_s=init_s,
               iter_times_s=times, iter_s=it, phases_s=ph, sequences_per_s=B / it, tokens_per_s=B * (P + A) / it,
               hours_per_epoch=hours)
    for k, f in enumerate(floors):
        out["floor_h100" if k == 0 else "floor_cpu"] = dict(machine=f["machine"], iter_s=f["iter_s"],
                                                            ms_per_seq=f["ms_per_seq"],
                                                            hours_per_epoch=f["hours_per_epoch"],
                                                            fraction=f["iter_s"] / it)
    line = json.dumps(out)
    if a.json:
        tmp = a.json + ".tmp-%d" % os.getpid()
        with open(tmp, "w") as fh:
            fh.write(line + "\n")
        os.replace(tmp, a.json)
    print(line)


if __name__ == "__main__":
    main()
