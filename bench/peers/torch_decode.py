#!/usr/bin/env python3
"""The PyTorch peer of DecodeBenchmark: transformers' generate (greedy, KV cache, EOS ignored through
min_new_tokens) on GPT2LMHeadModel, fp32, the same config, prompt tokens, batch and thread count. Prints one JSON line:
the median ms per generate call over the timed calls, and tokens/s.

    python3 bench/peers/torch_decode.py --model gpt2 --batch 1 --prompt 64 --new-tokens 64 --threads 2
"""
import argparse, json, statistics, time

import torch
from transformers import AutoModelForCausalLM, GPT2Config, OPTConfig

p = argparse.ArgumentParser()
p.add_argument("--model", default="gpt2", choices=["tiny", "gpt2", "opt-1.3b"])
p.add_argument("--device", default="cpu")
p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt", type=int, default=64)
p.add_argument("--new-tokens", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--runs", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
kw = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
if a.model == "opt-1.3b":
    cfg = OPTConfig(vocab_size=50272, hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                    max_position_embeddings=2048, word_embed_proj_dim=2048, do_layer_norm_before=True,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.0, attention_dropout=0.0)
else:
    cfg = (GPT2Config(vocab_size=512, n_positions=128, n_embd=256, n_layer=4, n_head=4, **kw) if a.model == "tiny"
           else GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, **kw))
cfg._attn_implementation = "sdpa"
model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, a.dtype)).to(a.device).eval()
eos = cfg.vocab_size - 1
ids = torch.tensor([[((b * a.prompt + i) * 7919) % cfg.vocab_size for i in range(a.prompt)] for b in range(a.batch)],
                   device=a.device)
mask = torch.ones_like(ids)
times = []
with torch.inference_mode():
    for run in range(a.warmup + a.runs):
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=a.new_tokens,
                             min_new_tokens=a.new_tokens, eos_token_id=eos, pad_token_id=eos, use_cache=True)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) * 1e3
        assert out.shape[1] == a.prompt + a.new_tokens
        if run >= a.warmup:
            times.append(dt)
ms = statistics.median(times)
print(json.dumps({"peer": "transformers.generate", "torch": torch.__version__, "device": a.device, "dtype": a.dtype,
                  "model": a.model, "batch": a.batch,
                  "prompt": a.prompt, "new_tokens": a.new_tokens, "threads": a.threads, "ms_per_generate": ms,
                  "tokens_per_s": a.batch * a.new_tokens / ms * 1e3, "min": min(times), "max": max(times)}))
