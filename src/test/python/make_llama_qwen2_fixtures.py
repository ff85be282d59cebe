#!/usr/bin/env python3
"""Makes the Llama and Qwen2 model fixtures under src/test/resources/fixtures/models/<case>/ (tiny random
transformers models saved as Hugging Face directories: config.json, model.safetensors, generation_config.json as
save_pretrained writes them, plus expected.json with transformers' outputs on a left-padded batch), and
src/test/resources/fixtures/llama_rope.json (transformers' RoPE inverse frequencies for config.json variants).

Cases:
  llama_gqa_untied     4 query heads over 2 key/value heads, lm_head of its own, default RoPE given in
                       transformers 5's form (rope_parameters with rope_theta inside)
  llama_rope_llama3    rope_scaling of type llama3 in the old form that Llama 3.1's config.json uses (rope_scaling
                       and a top-level rope_theta), with original_max_position_embeddings small enough that the
                       tiny head's frequencies fall in all three bands (kept, smoothed, divided by factor);
                       also attention_bias and mlp_bias on, and head_dim 16 != hidden_size / heads = 8
  qwen2_tied           Qwen2: q/k/v biases (o_proj bias-free), embeddings tied, one key/value head (MQA),
                       rope_theta 1e6
  qwen2_bf16_sliding   Qwen2 saved in bfloat16 (model.to(torch.bfloat16).save_pretrained), with
                       use_sliding_window and sliding_window 4 < T from layer max_window_layers = 1 on, so layer 0
                       sees every earlier token and layer 1 only the last 4

Every weight is redrawn with a wider spread than transformers' init (RMSNorm weights away from 1, biases away from 0)
so that a wrong norm, a missing bias or a misplaced scale shows in the logits. The float64 logits come from the
saved values upcast to float64 (bfloat16-rounded ones for qwen2_bf16_sliding), with attn_implementation "sdpa".

transformers' Llama and Qwen2 round to float32 in two places even in a float64 model: RMSNorm upcasts its input
to float32 (`hidden_states.to(torch.float32)`), and the rotary embedding takes its angles, cos and sin in float32
from a float32 inv_freq. That caps a float64 model's accuracy at ~1e-7, so for the float64 logits both are run in
float64 instead: RMSNorm without the cast, the rotary forward without its `.float()` casts, and inv_freq from
transformers' own RoPE init function run with `torch.float` aliased to float64 (the formulas are transformers'
code, evaluated in double). expected.json says so ("float64_patches") and records how far the unpatched
transformers' float64 logits are from the patched ones ("unpatched_float64_max_rel_diff", about 1e-7). The greedy
sequences come from the unpatched float32 model, as transformers' generate runs it.

expected.json:
  generator, transformers, torch   provenance
  dtype_logits            "float64"
  float64_patches         what was run in float64 that transformers rounds to float32 (see above)
  parameters              [{name, shape}] in named_parameters() order (a tied lm_head is not listed)
  inv_freq                {"float32": transformers' buffer, "float64": the same init function in float64}
  input_ids, attention_mask, position_ids   [B][T]; rows 1 and 2 left-padded with pad_token_id (eos if none)
  positions               "explicit": position_ids = cumsum(mask) - 1, 1 at pads (what generate passes)
  logits                  flat B*T*V, float64 (compare non-pad positions only)
  unpadded_input_ids      [1][T] (row 0, no padding); logits_unpadded: model(ids) alone, no mask or positions
  greedy                  {"max_new_tokens", "pad_token_id", "dtype", "sequences"}: model.generate(input_ids,
                          attention_mask, do_sample=False, ...) in float32

llama_rope.json: {"variants": [{"name", "config" (a config.json object), "inv_freq_float32", "inv_freq_float64"}]}
for the RoPE types and config forms rlhf4j reads (default, linear, dynamic, llama3; rope_scaling vs
rope_parameters; top-level rope_theta and original_max_position_embeddings), each inv_freq from the model class's
own rotary embedding (float32) and from the same init function run in float64.

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_llama_qwen2_fixtures.py
"""
import json
import logging
import os
import shutil
import types

import torch
import transformers
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "resources", "fixtures", "models")
ROPE_FIXTURE = os.path.join(HERE, "..", "resources", "fixtures", "llama_rope.json")
MAX_NEW = 10
DIGITS = 13  # significant digits kept for float64 values: far below the F64 tolerance of 1e-9


def llama_config(**kw):
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, hidden_act="silu",
                attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    base.update(kw)
    return LlamaConfig(**base)


def qwen2_config(**kw):
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=1, max_position_embeddings=64, rms_norm_eps=1e-6, hidden_act="silu",
                attention_dropout=0.0, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    base.update(kw)
    return Qwen2Config(**base)


def to_old_rope_form(config_json):
    """Rewrites config.json's rope_parameters as the rope_scaling + top-level rope_theta of older checkpoints."""
    with open(config_json) as f:
        c = json.load(f)
    rope = c.pop("rope_parameters")
    c["rope_theta"] = rope.pop("rope_theta")
    c["rope_scaling"] = rope
    with open(config_json, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)


LLAMA3 = {"rope_type": "llama3", "rope_theta": 5000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}

# (case, model class, config, saved dtype, edit of the saved config.json)
CASES = [
    ("llama_gqa_untied", LlamaForCausalLM, llama_config(rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
     torch.float32, None),
    ("llama_rope_llama3", LlamaForCausalLM,
     llama_config(head_dim=16, attention_bias=True, mlp_bias=True, rope_parameters=dict(LLAMA3)),
     torch.float32, to_old_rope_form),
    ("qwen2_tied", Qwen2ForCausalLM, qwen2_config(), torch.float32, None),
    ("qwen2_bf16_sliding", Qwen2ForCausalLM,
     qwen2_config(tie_word_embeddings=False, num_key_value_heads=2, use_sliding_window=True, sliding_window=4,
                  max_window_layers=1), torch.bfloat16, None),
]


def randomise(model, gen):
    """Redraws every parameter: RMSNorm weights 1 + 0.2 N, biases 0.1 N, matrices and embeddings 0.2 N."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith(".weight"):  # RMSNorm weights
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.2 * torch.randn(p.shape, generator=gen)
            p.copy_(v)


# ---- float64 without transformers' float32 roundings -----------------------------------------------------------

def rms_norm_f64(self, hidden_states):
    """LlamaRMSNorm / Qwen2RMSNorm.forward of transformers 5.18 without `hidden_states.to(torch.float32)`."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * hidden_states


def rotary_f64(self, x, position_ids):
    """LlamaRotaryEmbedding / Qwen2RotaryEmbedding.forward of transformers 5.18 without its float32 casts."""
    inv_freq_expanded = self.inv_freq[None, :, None].expand(position_ids.shape[0], -1, 1).to(x.dtype)
    position_ids_expanded = position_ids[:, None, :].to(x.dtype)
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


def inv_freq_f64(rotary_cls, config):
    """transformers' own inv_freq function for config's rope type, with `torch.float` aliased to float64."""
    rope_type = config.rope_parameters["rope_type"]
    fn = rotary_cls.compute_default_rope_parameters if rope_type == "default" else ROPE_INIT_FUNCTIONS[rope_type]
    saved = torch.float
    torch.float = torch.float64
    try:
        inv_freq, scaling = fn(config, None)
    finally:
        torch.float = saved
    assert inv_freq.dtype == torch.float64 and scaling == 1.0, (inv_freq.dtype, scaling)
    return inv_freq


def patch_f64(model):
    """Runs the model's RMSNorms and rotary embedding in float64 (see the module docstring)."""
    rotary = model.model.rotary_emb
    inv64 = inv_freq_f64(type(rotary), model.config)
    assert torch.allclose(inv64, rotary.inv_freq.double(), rtol=1e-6, atol=0), "float64 inv_freq strays"
    rotary.inv_freq = inv64
    rotary.forward = types.MethodType(rotary_f64, rotary)
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(rms_norm_f64, module)
    return inv64


def rounded(values):
    return [float(f"{v:.{DIGITS}g}") for v in values]


def make(case, cls, config, dtype, edit, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = cls(config).float().eval()
    randomise(model, gen)

    out = os.path.join(ROOT, case)
    if os.path.exists(out):
        shutil.rmtree(out)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    for f in os.listdir(out):
        if f not in ("config.json", "model.safetensors", "generation_config.json"):
            os.remove(os.path.join(out, f))
    if edit is not None:
        edit(os.path.join(out, "config.json"))

    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    b, t, pads = 3, 10, [0, 3, 1]  # row 0 unpadded, rows 1 and 2 left-padded
    ids = torch.randint(3, config.vocab_size, (b, t), generator=gen)  # real tokens avoid the special ids 0..2
    mask = torch.ones(b, t, dtype=torch.long)
    for row, n in enumerate(pads):
        ids[row, :n] = pad
        mask[row, :n] = 0
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)

    def load(torch_dtype):
        m = cls.from_pretrained(out, dtype=torch_dtype, attn_implementation="sdpa").eval()
        assert m.config._attn_implementation == "sdpa"
        return m

    m64 = load(torch.float64)
    with torch.no_grad():
        stock = m64(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    inv64 = patch_f64(m64)
    with torch.no_grad():
        logits = m64(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        unpadded = m64(input_ids=ids[:1]).logits
    assert not logits.isnan().any() and not unpadded.isnan().any()
    real = mask.bool()
    unpatched_diff = ((stock - logits)[real].abs().max() / logits[real].abs().max()).item()
    assert 0 < unpatched_diff < 1e-5, unpatched_diff

    m32 = load(torch.float32)
    inv32 = m32.model.rotary_emb.inv_freq
    assert inv32.dtype == torch.float32
    with torch.no_grad():
        seqs = m32.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW, pad_token_id=pad)

    if getattr(m64.config, "use_sliding_window", False):  # the window must matter in this batch
        m64.config.layer_types = ["full_attention"] * m64.config.num_hidden_layers
        for layer in m64.model.layers:
            layer.self_attn.sliding_window = None
        m64.model.has_sliding_layers = False
        with torch.no_grad():
            full = m64(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        assert (full - logits)[real].abs().max() > 1e-2, "the sliding window changes nothing"

    expected = {
        "generator": "src/test/python/make_llama_qwen2_fixtures.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype_logits": "float64",
        "float64_patches": "RMSNorm and the rotary embedding (inv_freq, cos, sin) run in float64; transformers "
                           "rounds them to float32 even in a float64 model",
        "unpatched_float64_max_rel_diff": unpatched_diff,
        "saved_dtype": str(dtype).removeprefix("torch."),
        "positions": "explicit",
        "parameters": [{"name": n, "shape": list(p.shape)} for n, p in m64.named_parameters()],
        "inv_freq": {"float32": inv32.tolist(), "float64": rounded(inv64.tolist())},
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": positions.tolist(),
        "logits": rounded(logits.flatten().tolist()),
        "unpadded_input_ids": ids[:1].tolist(),
        "logits_unpadded": rounded(unpadded.flatten().tolist()),
        "greedy": {"max_new_tokens": MAX_NEW, "pad_token_id": pad, "dtype": "float32", "sequences": seqs.tolist()},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{case}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes, unpatched float64 "
          f"differs by {unpatched_diff:.1e}; greedy {seqs.tolist()}")


# ---- RoPE variants -------------------------------------------------------------------------------------------------

def llama_json(**kw):
    base = {"model_type": "llama", "vocab_size": 32, "hidden_size": 64, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 4096}
    base.update(kw)
    return base


ROPE_VARIANTS = [
    ("no rope fields: theta 10000", llama_json()),
    ("default, rope_parameters", llama_json(rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("default, top-level rope_theta only", llama_json(rope_theta=1234.5)),
    ("default ignores partial_rotary_factor", llama_json(rope_theta=10000.0, partial_rotary_factor=0.5)),
    ("rope_parameters' rope_theta wins over the top-level one",
     llama_json(rope_theta=7.0, rope_parameters={"rope_type": "default", "rope_theta": 900.0})),
    ("linear, old form with 'type'", llama_json(rope_theta=20000.0, rope_scaling={"type": "linear", "factor": 4.0})),
    ("linear, rope_parameters", llama_json(rope_parameters={"rope_type": "linear", "factor": 2.5,
                                                            "rope_theta": 10000.0})),
    ("rope_scaling wins over rope_parameters",
     llama_json(rope_theta=3000.0, rope_scaling={"rope_type": "linear", "factor": 3.0},
                rope_parameters={"rope_type": "dynamic", "factor": 5.0, "rope_theta": 8.0})),
    ("dynamic, factor 2", llama_json(rope_scaling={"rope_type": "dynamic", "factor": 2.0}, rope_theta=10000.0)),
    ("dynamic, factor 1.7", llama_json(head_dim=32, rope_scaling={"rope_type": "dynamic", "factor": 1.7})),
    ("llama3, Llama 3.1 8B", llama_json(hidden_size=4096, num_attention_heads=32, max_position_embeddings=131072,
                                         rope_theta=500000.0,
                                         rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 8192,
                                                       "rope_type": "llama3"})),
    ("llama3, odd factors", llama_json(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 3.3,
                                                        "low_freq_factor": 1.5, "high_freq_factor": 7.25,
                                                        "original_max_position_embeddings": 100})),
    ("llama3, top-level original_max_position_embeddings wins",
     llama_json(original_max_position_embeddings=64,
                rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 32})),
    ("llama3 without original_max_position_embeddings: max_position_embeddings",
     llama_json(max_position_embeddings=48, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0})),
    ("qwen2, Qwen2.5 7B style", {"model_type": "qwen2", "vocab_size": 32, "hidden_size": 3584,
                                 "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 28,
                                 "num_key_value_heads": 4, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
                                 "rope_scaling": None}),
]


def make_rope_variants():
    variants = []
    for name, cfg in ROPE_VARIANTS:
        config = AutoConfig.for_model(**cfg)
        rotary_cls = LlamaRotaryEmbedding if cfg["model_type"] == "llama" else Qwen2RotaryEmbedding
        inv32 = rotary_cls(config).inv_freq
        inv64 = inv_freq_f64(rotary_cls, AutoConfig.for_model(**cfg))
        assert inv32.dtype == torch.float32 and torch.allclose(inv64, inv32.double(), rtol=1e-6, atol=0), name
        variants.append({"name": name, "config": cfg, "inv_freq_float32": inv32.tolist(),
                         "inv_freq_float64": inv64.tolist()})
        print(f"rope: {name}: {len(inv32)} frequencies")
    with open(ROPE_FIXTURE, "w") as f:
        json.dump({"generator": "src/test/python/make_llama_qwen2_fixtures.py",
                   "transformers": transformers.__version__, "torch": torch.__version__, "variants": variants}, f,
                  separators=(",", ":"))


if __name__ == "__main__":
    logging.getLogger("transformers").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    for i, (case, cls, config, dtype, edit) in enumerate(CASES):
        make(case, cls, config, dtype, edit, 20240800 + i)
    make_rope_variants()
