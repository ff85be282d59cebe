#!/usr/bin/env python3
"""Makes src/test/resources/fixtures/gpt2_tiny.json: a tiny transformers.GPT2LMHeadModel (random weights, eager
attention, dropout off), its parameters by Hugging Face name, the logits on a left-padded batch and the gradients of
a cross-entropy loss with respect to every parameter, all in float64.

It also records transformers' initial weight statistics per parameter (mean, std) for a larger config, and GPT-2
small's parameter count.

Gpt2Test.java loads the weights into io.github.rlhf4j.model.Gpt2 by name and checks names, shapes, order, logits and
gradients. The weights are drawn with a larger spread than GPT-2's init (LayerNorm weights away from 1, biases away
from 0, matrices with std 0.25) so that every parameter and the attention pattern matter to the output, and are
rounded to 4 significant digits to keep the file small; the model then runs in float64 on exactly those values, so
the Java F64 run can match to rounding. Gradients keep 12 significant digits.

Regenerate with:  /work/.venv-ref/bin/python src/test/python/make_gpt2_fixture.py   (torch 2.x CPU, transformers 5.x)
"""
import json
import os

import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

OUT = os.path.join(os.path.dirname(__file__), "..", "resources", "fixtures", "gpt2_tiny.json")
gen = torch.Generator().manual_seed(20240607)

VOCAB, N_POS, N_EMBD, N_LAYER, N_HEAD, EPS = 61, 16, 24, 2, 4, 1e-5
B, T = 2, 7

config = GPT2Config(vocab_size=VOCAB, n_positions=N_POS, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
                    layer_norm_epsilon=EPS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                    bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
config._attn_implementation = "eager"
model = GPT2LMHeadModel(config).to(torch.float64).eval()


def rounded(t, digits):
    return torch.tensor([float(f"{v:.{digits}g}") for v in t.flatten().tolist()], dtype=torch.float64).view(t.shape)


# Parameters in named_parameters order: the tied lm_head.weight is the same tensor as transformer.wte.weight, so it
# is listed once; the attention's causal-mask buffers (attn.bias in older versions) are not parameters.
names = [n for n, _ in model.named_parameters()]
state = model.state_dict()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
        elif name.endswith(".bias"):
            v = 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
        else:
            v = 0.25 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
        p.copy_(rounded(v, 4))
assert "lm_head.weight" not in names and model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
for k in state:
    assert k in names or k == "lm_head.weight", "state_dict entry that is neither a parameter nor the tied head: " + k

ids = torch.randint(0, VOCAB, (B, T), generator=gen)
mask = torch.ones(B, T, dtype=torch.long)
mask[1, 0] = 0  # row 1 is left-padded by one token
ids[1, 0] = 0
positions = torch.arange(T).unsqueeze(0).expand(B, T).contiguous()  # the same positions in both libraries
targets = torch.randint(0, VOCAB, (B, T), generator=gen)
targets[mask == 0] = -100

logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
loss.backward()


def enc_f(t, digits=None):
    vals = t.detach().flatten().tolist()
    if digits is not None:
        vals = [float(f"{v:.{digits}g}") for v in vals]
    return {"shape": list(t.shape), "dtype": "f64", "data": vals}


def enc_i(t):
    return {"shape": list(t.shape), "dtype": "i32", "data": [int(v) for v in t.flatten().tolist()]}


# transformers' own initialisation (_init_weights), as per-parameter mean and std of a freshly built model large
# enough for the sample statistics to be sharp: Gpt2Test compares rlhf4j's initial weights with them.
torch.manual_seed(1)
INIT = {"vocab_size": 61, "n_positions": 64, "n_embd": 128, "n_layer": 4, "n_head": 4}
init_model = GPT2LMHeadModel(GPT2Config(**INIT, bos_token_id=0, eos_token_id=0))
init_stats = [{"name": n, "numel": p.numel(), "mean": p.double().mean().item(), "std": p.double().std().item()}
              for n, p in init_model.named_parameters()]
with torch.device("meta"):
    gpt2_small_count = sum(p.numel() for p in GPT2LMHeadModel(GPT2Config()).parameters())

params = []
for name, p in model.named_parameters():
    params.append({"name": name, "shape": list(p.shape), "value": enc_f(p), "grad": enc_f(p.grad, 12)})

fixture = {
    "generator": "src/test/python/make_gpt2_fixture.py",
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "config": {"vocab_size": VOCAB, "n_positions": N_POS, "n_embd": N_EMBD, "n_layer": N_LAYER, "n_head": N_HEAD,
               "layer_norm_epsilon": EPS},
    "parameters": params,
    "input_ids": enc_i(ids),
    "attention_mask": enc_i(mask),
    "position_ids": enc_i(positions),
    "targets": enc_i(targets),
    "logits": enc_f(logits, 12),
    "loss": loss.item(),
    "init": {"config": INIT, "stats": init_stats},
    "gpt2_small_parameter_count": gpt2_small_count,
}
with open(OUT, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
print(f"wrote {OUT}: {len(params)} parameters, {sum(p.numel() for p in model.parameters())} values, "
      f"loss {loss.item():.6f}, {os.path.getsize(OUT)} bytes")
