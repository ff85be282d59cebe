#!/usr/bin/env python3
"""The PyTorch peer of TrainStepBenchmark: one GPT-2 training step (forward, cross-entropy, backward, AdamW) with
transformers' GPT2LMHeadModel, fp32, dropout off, the same config, batch, tokens and thread count. Prints one JSON
line: the median ms/step over the timed steps.

    python3 bench/peers/torch_train_step.py --model gpt2 --batch 4 --seq 128 --threads 2
    python3 bench/peers/torch_train_step.py --model gpt2 --device cuda --batch 8 --seq 1024 --fused --compile \
        --precision bf16        (bench/gpu/train_step.sh: issue 9's peer; --precision fp32 is exact fp32, no TF32)

On a GPU each step ends with loss.item(), which waits for the device, so the host clock times the whole step.
"""
import argparse, contextlib, json, statistics, time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("--model", default="tiny", choices=["tiny", "gpt2"])
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--device", default="cpu")
p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
               help="fp32: exact fp32 matmuls (no TF32); bf16: autocast to bf16 over fp32 weights (mixed precision)")
p.add_argument("--fused", action="store_true", help="fused AdamW (one kernel for all parameters; GPU)")
p.add_argument("--compile", action="store_true", help="torch.compile the forward and loss")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.set_float32_matmul_precision("highest")
kw = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
cfg = (GPT2Config(vocab_size=512, n_positions=128, n_embd=256, n_layer=4, n_head=4, **kw) if a.model == "tiny"
       else GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, **kw))
cfg._attn_implementation = "sdpa"
model = GPT2LMHeadModel(cfg).to(a.device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0,
                        **({"fused": True} if a.fused else {}))
n = a.batch * a.seq
ids = torch.tensor([(i * 7919) % cfg.vocab_size for i in range(n)]).view(a.batch, a.seq)
targets = torch.tensor([((i + 1) * 7919) % cfg.vocab_size for i in range(n)]).view(a.batch, a.seq)
ids, targets = ids.to(a.device), targets.to(a.device)


def loss_of(ids, targets):
    logits = model(ids).logits
    return torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1))


loss_fn = torch.compile(loss_of) if a.compile else loss_of
autocast = (torch.autocast(device_type=a.device.split(":")[0], dtype=torch.bfloat16) if a.precision == "bf16"
            else contextlib.nullcontext())
times = []
for step in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    with autocast:
        loss = loss_fn(ids, targets)
    loss.backward()
    opt.step()
    loss.item()
    if step >= a.warmup:
        times.append((time.perf_counter() - t0) * 1e3)
ms = statistics.median(times)
print(json.dumps({"peer": "torch", "torch": torch.__version__, "model": a.model, "batch": a.batch, "seq": a.seq,
                  "threads": a.threads, "device": a.device, "precision": a.precision, "fused": a.fused,
                  "compile": a.compile, "ms_per_step": ms, "tokens_per_s": n / ms * 1e3, "min": min(times),
                  "max": max(times)}))
