#!/usr/bin/env python3
"""The PyTorch peer of TrainStepBenchmark: one GPT-2 training step (forward, cross-entropy, backward, AdamW) with
transformers' GPT2LMHeadModel, fp32, dropout off, the same config, batch, tokens and thread count. Prints one JSON
line: the median ms/step over the timed steps.

    python3 bench/peers/torch_train_step.py --model gpt2 --batch 4 --seq 128 --threads 2
"""
import argparse, json, statistics, time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("--model", default="tiny", choices=["tiny", "gpt2"])
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--steps", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(a.threads)
kw = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
cfg = (GPT2Config(vocab_size=512, n_positions=128, n_embd=256, n_layer=4, n_head=4, **kw) if a.model == "tiny"
       else GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, **kw))
cfg._attn_implementation = "sdpa"
model = GPT2LMHeadModel(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
n = a.batch * a.seq
ids = torch.tensor([(i * 7919) % cfg.vocab_size for i in range(n)]).view(a.batch, a.seq)
targets = torch.tensor([((i + 1) * 7919) % cfg.vocab_size for i in range(n)]).view(a.batch, a.seq)
times = []
for step in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    logits = model(ids).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1))
    loss.backward()
    opt.step()
    loss.item()
    if step >= a.warmup:
        times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"peer": "torch", "torch": torch.__version__, "model": a.model, "batch": a.batch, "seq": a.seq,
                  "threads": a.threads, "ms_per_step": statistics.median(times), "min": min(times), "max": max(times)}))
