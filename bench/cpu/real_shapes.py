#!/usr/bin/env python3
"""Real-shape parity with transformers, on the CPU (too heavy for CI; the committed tiny fixtures are CI's proof).

For each model family at the shape of a real checkpoint (random weights: no model hub here), builds the model with
transformers, saves it in Hugging Face layout under OUT/<name>/ (config.json, model.safetensors), and writes
expected.json in the format of src/test/resources/fixtures/models/*/expected.json: a left-padded batch, transformers'
float32 logits (in expected_logits.f32, little-endian, [B, T, V]) and its float32 greedy generation of 64 tokens.
Then run rlhf4j's ModelFixturesTest on those directories:

    /work/.venv-ref/bin/python bench/cpu/real_shapes.py --out /tmp/real-shapes [--only gpt2,opt-125m]
    mvn -B -q test -Dtest=ModelFixturesTest -Drlhf4j.modelFixtures=/tmp/real-shapes
"""
import argparse, json, os, shutil, time

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, GPT2Config, GPTNeoConfig, LlamaConfig, OPTConfig, Qwen2Config)

SHAPES = {
    "gpt2": lambda: GPT2Config(),
    "opt-125m": lambda: OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, ffn_dim=3072,
                                  num_attention_heads=12, max_position_embeddings=2048, word_embed_proj_dim=768,
                                  do_layer_norm_before=True, pad_token_id=1, bos_token_id=2, eos_token_id=2),
    "opt-350m": lambda: OPTConfig(vocab_size=50272, hidden_size=1024, num_hidden_layers=24, ffn_dim=4096,
                                  num_attention_heads=16, max_position_embeddings=2048, word_embed_proj_dim=512,
                                  do_layer_norm_before=False, pad_token_id=1, bos_token_id=2, eos_token_id=2),
    "gpt-neo-125M": lambda: GPTNeoConfig(vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
                                         attention_types=[[["global", "local"], 6]], window_size=256,
                                         max_position_embeddings=2048),
    "llama-3.2-1B": lambda: LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                        num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                                        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                        rope_theta=500000.0, bos_token_id=128000, eos_token_id=128001,
                                        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                      "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 8192}),
    "qwen2-0.5B": lambda: Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                      max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                      tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643),
}

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--only", default="")
p.add_argument("--prompt", type=int, default=24)
p.add_argument("--new-tokens", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
for name, make in SHAPES.items():
    if a.only and name not in a.only.split(","):
        continue
    t0 = time.time()
    torch.manual_seed(0)
    cfg = make()
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    out = os.path.join(a.out, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    v = cfg.vocab_size
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    rows = [[(i * 7919 + 13) % v for i in range(a.prompt)], [(i * 104729 + 7) % v for i in range(a.prompt - 5)]]
    t = a.prompt
    ids = torch.tensor([[pad] * (t - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (t - len(r)) + [1] * len(r) for r in rows])
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    explicit = cfg.model_type != "opt"
    with torch.no_grad():
        kw = {"position_ids": pos} if explicit else {}
        logits = model(ids, attention_mask=mask, **kw).logits.float().numpy()
        greedy = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=a.new_tokens,
                                pad_token_id=pad)
    logits.astype("<f4").tofile(os.path.join(out, "expected_logits.f32"))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float32",
                   "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "position_ids": pos.tolist(),
                   "positions": "explicit" if explicit else "from_mask", "logits_file": "expected_logits.f32",
                   "greedy": {"max_new_tokens": a.new_tokens, "pad_token_id": pad, "eos_token_id": cfg.eos_token_id,
                              "sequences": greedy.tolist()}}, f)
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n / 1e6:.0f}M parameters, wrote {out} in {time.time() - t0:.0f} s", flush=True)
    del model
