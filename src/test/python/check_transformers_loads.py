"""Checks that model directories written by rlhf4j load in transformers unchanged: no missing, unexpected or
mismatched tensors, and the same logits as the directory they were converted from (bit-identical for float32).

    bin/rlhf4j convert --model SRC --out OUT [--dtype bf16]
    /work/.venv-ref/bin/python src/test/python/check_transformers_loads.py OUT SRC [OUT2 SRC2 ...]
"""
import sys

import torch
from transformers import AutoModelForCausalLM

ok = True
args = sys.argv[1:]
for out, src in zip(args[0::2], args[1::2]):
    m, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    problems = {k: v for k, v in info.items() if v}
    ids = torch.tensor([[(i * 37 + 5) % m.config.vocab_size for i in range(9)]])
    with torch.no_grad():
        a, b = m(ids).logits, ref(ids).logits
    diff = (a - b).abs().max().item()
    same = torch.equal(a, b)
    print(f"{out}: {type(m).__name__}, loading problems {problems or 'none'}, max |logit diff| vs {src} = {diff:.3g}"
          f"{' (bit-identical)' if same else ''}")
    ok &= not problems
sys.exit(0 if ok else 1)
