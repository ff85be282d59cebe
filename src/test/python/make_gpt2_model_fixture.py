"""Writes src/test/resources/fixtures/models/gpt2-tiny/: a tiny random GPT-2 in Hugging Face layout (config.json,
model.safetensors, as save_pretrained writes them) and expected.json with transformers' logits (float64) for a
left-padded batch and its greedy generation (float32), the proof that rlhf4j's GPT-2, its checkpoint loading, its
KV cache and its generation match transformers.

Run: /work/.venv-ref/bin/python src/test/python/make_gpt2_model_fixture.py
"""
import json
import os
import shutil

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "models", "gpt2-tiny")


def main():
    torch.manual_seed(1234)
    cfg = GPT2Config(vocab_size=97, n_positions=40, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
                     bos_token_id=96, eos_token_id=96, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms so a wrong LayerNorm shows
        for name, p in model.named_parameters():
            if "ln" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    shutil.rmtree(ROOT, ignore_errors=True)
    model.save_pretrained(ROOT, safe_serialization=True)
    for f in os.listdir(ROOT):
        if f not in ("config.json", "model.safetensors", "generation_config.json"):
            os.remove(os.path.join(ROOT, f))
    pad = cfg.eos_token_id
    rows = [[5, 17, 33, 2, 90, 41, 8, 13, 77, 21], [60, 3, 44, 12, 9, 30, 71]]
    t = max(len(r) for r in rows)
    ids = [[pad] * (t - len(r)) + r for r in rows]
    mask = [[0] * (t - len(r)) + [1] * len(r) for r in rows]
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)
    pos_t = (mask_t.cumsum(-1) - 1).masked_fill(mask_t == 0, 1)
    m64 = GPT2LMHeadModel.from_pretrained(ROOT, dtype=torch.float64).eval()
    with torch.no_grad():
        logits = m64(ids_t, attention_mask=mask_t, position_ids=pos_t).logits
        unpadded = m64(torch.tensor([rows[0]])).logits
    m32 = GPT2LMHeadModel.from_pretrained(ROOT, dtype=torch.float32).eval()
    with torch.no_grad():
        greedy = m32.generate(ids_t, attention_mask=mask_t, do_sample=False, max_new_tokens=12, pad_token_id=pad)
        penalised = m32.generate(ids_t, attention_mask=mask_t, do_sample=False, max_new_tokens=12, pad_token_id=pad,
                                 repetition_penalty=1.5)
    out = {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "input_ids": ids, "attention_mask": mask, "position_ids": pos_t.tolist(), "positions": "explicit",
        "logits": logits.flatten().tolist(),
        "unpadded_ids": rows[0], "logits_unpadded": unpadded.flatten().tolist(),
        "greedy": {"max_new_tokens": 12, "pad_token_id": pad, "eos_token_id": cfg.eos_token_id,
                   "sequences": greedy.tolist()},
        "greedy_repetition_penalty": {"max_new_tokens": 12, "pad_token_id": pad, "eos_token_id": cfg.eos_token_id,
                                      "repetition_penalty": 1.5, "sequences": penalised.tolist()},
    }
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(out, f)
    print("wrote", ROOT, {f: os.path.getsize(os.path.join(ROOT, f)) for f in os.listdir(ROOT)})


if __name__ == "__main__":
    main()
