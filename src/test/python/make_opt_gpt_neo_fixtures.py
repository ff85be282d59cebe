#!/usr/bin/env python3
"""Makes the OPT and GPT-Neo model fixtures under src/test/resources/fixtures/models/<case>/: tiny random
transformers models saved as Hugging Face directories (config.json, model.safetensors, generation_config.json as
save_pretrained writes them) plus expected.json with transformers' outputs on a left-padded batch.

Cases:
  opt_tiny          pre-LN OPT (125m..66b layout), ffn_dim not 4 hidden, final_layer_norm present
  opt_350m_style    post-LN OPT (do_layer_norm_before=false, as facebook/opt-350m) with word_embed_proj_dim <
                    hidden_size, so project_in/project_out exist and the LM head reads word_embed_proj_dim
  opt_nobias_plain  pre-LN OPT with enable_bias=false and layer_norm_elementwise_affine=false (no Linear biases,
                    parameter-free LayerNorms)
  gpt_neo_tiny      GPT-Neo with attention_types [[["global", "local"], 1]] and window_size 4 < T, so the local
                    layer's window hides keys that the global layer sees

Every weight is redrawn with a wider spread than transformers' init (LayerNorm weights away from 1, biases away from
0) so that a wrong norm, a missing bias or a misplaced scale shows in the logits. The model is saved in float32;
expected.json's logits come from the same values upcast to float64 (model.double()), so rlhf4j's F64 run can match
to rounding, and its greedy sequences from the float32 model, as transformers' generate runs it.

OPT's eager attention takes its softmax in float32 even in a float64 model (and turns the fully masked rows of
left padding into NaN that 0 * NaN then carries into the real tokens' rows), so OPT runs with attn_implementation
"sdpa", transformers' own float64-exact path. GPT-Neo (eager only) casts q and k to float32 before q k^T even in a
float64 model; for the float64 logits that cast is patched out (the computation is otherwise transformers' own code,
unchanged), and expected.json says so
("gpt_neo_attention_f32_cast": "removed for the float64 logits").

expected.json:
  transformers, torch     versions
  dtype_logits            "float64"
  parameters              [{name, shape}] in named_parameters() order (the tied lm_head is the embedding's tensor
                          and is not listed)
  input_ids, attention_mask, position_ids   [B][T]; one or more rows left-padded with pad_token_id (eos if none)
  positions               "explicit": the logits were computed with position_ids = cumsum(mask) - 1, 1 at pads
                          (what transformers' generate passes); for OPT they equal the mask-derived default at
                          every non-pad position
  logits                  flat B*T*V, float64, at every position (pad positions included; compare non-pad only)
  unpadded_input_ids      [1][T] (row 0, which has no padding), logits_unpadded its logits from model(ids) alone
  greedy                  {"max_new_tokens", "pad_token_id", "sequences"}: model.generate(input_ids,
                          attention_mask, do_sample=False, ...) in float32

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_opt_gpt_neo_fixtures.py
"""
import json
import os
import shutil

import torch
import transformers
from transformers import GPTNeoConfig, GPTNeoForCausalLM, OPTConfig, OPTForCausalLM
from transformers.models.gpt_neo import modeling_gpt_neo

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "fixtures", "models")
MAX_NEW = 10
DIGITS = 13  # significant digits kept for float64 logits: far below the F64 tolerance of 1e-9


def opt_config(**kw):
    base = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, ffn_dim=48, num_attention_heads=4,
                max_position_embeddings=32, dropout=0.0, attention_dropout=0.0, layerdrop=0.0,
                activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2, init_std=0.02)
    base.update(kw)
    return OPTConfig(**base)


CASES = [
    ("opt_tiny", OPTForCausalLM, opt_config()),
    ("opt_350m_style", OPTForCausalLM, opt_config(do_layer_norm_before=False, word_embed_proj_dim=16, ffn_dim=64)),
    ("opt_nobias_plain", OPTForCausalLM, opt_config(enable_bias=False, layer_norm_elementwise_affine=False,
                                                    vocab_size=64, hidden_size=16, ffn_dim=40)),
    ("gpt_neo_tiny", GPTNeoForCausalLM,
     GPTNeoConfig(vocab_size=96, hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=32,
                  attention_types=[[["global", "local"], 1]], window_size=4, intermediate_size=None,
                  activation_function="gelu_new", resid_dropout=0.0, embed_dropout=0.0, attention_dropout=0.0,
                  bos_token_id=0, eos_token_id=0, pad_token_id=None)),
]


def randomise(model, gen):
    """Redraws every parameter: norms' weights 1 + 0.2 N, biases 0.1 N, matrices and embeddings 0.2 N."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith(".weight"):  # LayerNorm weights
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.2 * torch.randn(p.shape, generator=gen)
            p.copy_(v)


def neo_attn_without_f32_cast(self, query, key, value, attention_mask=None):
    """GPTNeoSelfAttention._attn of transformers 5.18 without its `query/key.to(torch.float32)`: in a float64
    model the cast would round q and k to float32 and cap the logits' accuracy at ~1e-7."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2))
    query_length, key_length = query.size(-2), key.size(-2)
    causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
    mask_value = torch.tensor(torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype,
                              device=attn_weights.device)
    attn_weights = torch.where(causal_mask, attn_weights, mask_value)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = torch.nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = attn_weights.to(value.dtype)
    attn_weights = self.attn_dropout(attn_weights)
    return torch.matmul(attn_weights, value), attn_weights


def rounded(values):
    return [float(f"{v:.{DIGITS}g}") for v in values]


def make(case, cls, config, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    model = cls(config).float().eval()
    randomise(model, gen)

    out = os.path.join(ROOT, case)
    if os.path.exists(out):
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(out):
        if f not in ("config.json", "model.safetensors", "generation_config.json"):
            os.remove(os.path.join(out, f))

    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    b, t, pads = 3, 10, [0, 3, 1]  # row 0 unpadded, rows 1 and 2 left-padded
    vocab = config.vocab_size
    ids = torch.randint(3, vocab, (b, t), generator=gen)  # avoid the special ids 0..2 in real tokens
    mask = torch.ones(b, t, dtype=torch.long)
    for row, n in enumerate(pads):
        ids[row, :n] = pad
        mask[row, :n] = 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)

    neo = isinstance(model, GPTNeoForCausalLM)
    original_attn = modeling_gpt_neo.GPTNeoSelfAttention._attn
    if neo:
        modeling_gpt_neo.GPTNeoSelfAttention._attn = neo_attn_without_f32_cast
    try:
        m64 = cls.from_pretrained(out, attn_implementation="eager" if neo else "sdpa").double().eval()
        with torch.no_grad():
            logits = m64(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            unpadded = m64(input_ids=ids[:1]).logits
            assert not logits.isnan().any() and not unpadded.isnan().any()
            if not neo:  # OPT's own default positions agree with the explicit ones away from padding
                from_mask = m64(input_ids=ids, attention_mask=mask).logits
                assert torch.equal(from_mask[mask.bool()], logits[mask.bool()])
    finally:
        modeling_gpt_neo.GPTNeoSelfAttention._attn = original_attn

    m32 = cls.from_pretrained(out, attn_implementation="eager" if neo else "sdpa").float().eval()
    with torch.no_grad():
        seqs = m32.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW, pad_token_id=pad)

    expected = {
        "generator": "src/test/python/make_opt_gpt_neo_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype_logits": "float64",
        "positions": "explicit",
        "parameters": [{"name": n, "shape": list(p.shape)} for n, p in m64.named_parameters()],
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": positions.tolist(),
        "logits": rounded(logits.flatten().tolist()),
        "unpadded_input_ids": ids[:1].tolist(),
        "logits_unpadded": rounded(unpadded.flatten().tolist()),
        "greedy": {"max_new_tokens": MAX_NEW, "pad_token_id": pad, "dtype": "float32", "sequences": seqs.tolist()},
    }
    if neo:
        expected["gpt_neo_attention_f32_cast"] = "removed for the float64 logits"
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{case}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes; greedy {seqs.tolist()}")


if __name__ == "__main__":
    for i, (case, cls, config) in enumerate(CASES):
        make(case, cls, config, 20240700 + i)
