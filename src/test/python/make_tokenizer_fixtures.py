"""Writes the tokenizer and chat-template fixtures under src/test/resources/fixtures/tokenizers/.

Every expected value here comes from transformers (AutoTokenizer, apply_chat_template, jinja2 through
transformers' own template renderer); the Java tests compare against these files exactly.

  gpt2.expected.json            transformers' GPT-2 tokenizer on varied strings (the tokenizer itself is not
                                copied: the test reads it from the shared data folder)
  opt_style/, llama_style/, qwen2_style/
                                tiny tokenizers trained here on hh-rlhf text with the `tokenizers` library and
                                saved by transformers' own classes (GPT2Tokenizer with OPT's </s> BOS,
                                LlamaTokenizer, Qwen2Tokenizer), plus config.json / generation_config.json
  <name>.expected.json          what AutoTokenizer.from_pretrained(<name>/) does with them
  templates.expected.json       common chat templates rendered by transformers' jinja2 environment
  deepspeed_chat.expected.json  DeepSpeed-Chat's chatbot.py prompt form, transcribed below

Run:  /work/.venv-ref/bin/python src/test/python/make_tokenizer_fixtures.py
Needs transformers 5.x, tokenizers, jinja2. The JSON files are written atomically (temp file, then rename); the
tokenizer folders are rewritten whole by save_pretrained. The output is the same on every run.
"""

import datetime
import gzip
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import transformers
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Tokenizer, LlamaTokenizer, Qwen2Tokenizer
from transformers.utils.chat_template_utils import render_jinja_template

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / "src/test/resources/fixtures/tokenizers"
SHARED = Path(os.environ.get("RLHF4J_SHARED_DATA", REPO.parent / "shared/data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
GPT2_DIR = SHARED / "tokenizers/gpt2"
HH = SHARED / "hh-rlhf/harmless-base-sample.jsonl.gz"

# Hand-picked harmless conversations from the hh-rlhf sample (row numbers in harmless-base-sample.jsonl.gz).
HH_ROWS = [82, 100, 445, 659, 1000]

TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "   three leading spaces",
    "multiple   spaces    inside",
    "tabs\tand\nnewlines\n\n",
    "\n\nHuman: What is the capital of France?\n\nAssistant: Paris.",
    "Human: hi\n Assistant: ",
    "don't won't it's I'm we've they're you'll",
    "Numbers 12345 and 3.14159, dates 2024-07-26.",
    "UPPER lower MiXeD",
    "café naïve résumé façade",
    "Grüße aus Köln, Größe",
    "日本語のテキストです。",
    "中文字符测试",
    "Привет, мир",
    "Ελληνικά γράμματα",
    "emoji 😀 thumbs 👍🏽 flag 🇫🇷 family 👨‍👩‍👧",
    "combining e\u0301 and precomposed \u00e9",
    "zero\u200bwidth and\u00a0nbsp",
    "curly quotes \u2019 \u201c \u201d and dash \u2014",
    "code: def f(x):\n    return x ** 2  # square",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "a<|endoftext|> <|endoftext|>b",
    "x" * 40,
    "   ",
    "\n",
]

# Strings with each family's own special tokens inside the text.
EXTRA_TEXTS = {
    "opt_style": ["</s>", "Hi</s>there", "<pad><unk><s>"],
    "llama_style": ["<s>", "Hi</s> there", "[INST] question [/INST] answer </s>", "<unk>"],
    "qwen2_style": ["<|im_start|>user\nHi<|im_end|>\n", "<|endoftext|>", "a<|im_end|>b"],
}

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there! How are you?"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "  What is 2+2?  "},
        {"role": "assistant", "content": "4, \"quoted\" & <b>bold</b>"},
        {"role": "user", "content": "Thanks \u2014 \u00fcn\u00efc\u00f6d\u00e9 \u2713 \U0001F600"},
    ],
    [
        {"role": "user", "content": "Can you recommend a book?"},
        {"role": "assistant", "content": "Try \u201cThe Hobbit\u201d.\nIt is short."},
        {"role": "user", "content": "Another one,\nplease."},
        {"role": "assistant", "content": "Dune."},
    ],
]


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def hh_conversations():
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [rows[i]["chosen"] for i in HH_ROWS]


def hh_corpus():
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        return [json.loads(line)["chosen"] for line in f]


def special_id(tok, name):
    return getattr(tok, name + "_id")


def expected_ids(tok, d):
    """bos/eos/pad as rlhf4j documents them: the tokenizer's own token, else generation_config.json, else
    config.json; pad then falls back to eos. stop_ids: generation_config's eos (int or list), else config's, plus
    the tokenizer's eos."""
    cfgs = []
    for name in ("generation_config.json", "config.json"):
        p = Path(d) / name
        cfgs.append(json.loads(p.read_text()) if p.exists() else {})

    def pick(name):
        v = special_id(tok, name)
        if v is not None:
            return v
        for c in cfgs:
            x = c.get(name + "_id")
            if isinstance(x, list):
                x = x[0] if x else None
            if x is not None:
                return x
        return -1

    bos, eos, pad = pick("bos_token"), pick("eos_token"), pick("pad_token")
    if pad == -1:
        pad = eos
    stops = []
    for c in cfgs:
        if c.get("eos_token_id") is not None:
            x = c["eos_token_id"]
            stops = list(x) if isinstance(x, list) else [x]
            break
    if tok.eos_token_id is not None and tok.eos_token_id not in stops:
        stops.append(tok.eos_token_id)
    return {"bos_id": bos, "eos_id": eos, "pad_id": pad, "stop_ids": stops}


def batch(tok, texts, **kw):
    enc = tok(texts, **kw)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def tokenizer_expectations(tok, d, texts):
    special = expected_ids(tok, d)
    if tok.pad_token is None:
        # Llama and GPT-2 have no pad token; DeepSpeed-Chat (and rlhf4j) pad with eos.
        tok.pad_token = tok.eos_token
    cases = []
    for t in texts:
        ids = tok(t)["input_ids"]
        cases.append({
            "text": t,
            "ids": ids,
            "ids_plain": tok(t, add_special_tokens=False)["input_ids"],
            "decode": tok.decode(ids),
            "decode_skip": tok.decode(ids, skip_special_tokens=True),
        })
    n = len(tok)
    sample = sorted(set(list(range(0, min(n, 40))) + list(range(n - 10, n)) + [n // 2, n // 3]
                        + list(tok.all_special_ids)))
    batch_texts = [t for t in texts if t][:6]
    longest = max(len(tok(t)["input_ids"]) for t in batch_texts)
    limit = max(3, longest // 2)
    padded = {
        "texts": batch_texts,
        "left": batch(tok, batch_texts, padding=True, padding_side="left"),
        "right_max_length": batch(tok, batch_texts, padding="max_length", truncation=True, max_length=limit,
                                  padding_side="right"),
        "limit": limit,
    }
    # truncation_side is an attribute: transformers 5 ignores it as a call argument.
    tok.truncation_side = "left"
    padded["left_truncate_left"] = batch(tok, batch_texts, padding=True, truncation=True, max_length=limit,
                                         padding_side="left")
    tok.truncation_side = "right"
    out = {
        "transformers": transformers.__version__,
        "tokenizer_class": type(tok).__name__,
        "len": len(tok),
        "vocab_size": tok.vocab_size,
        "tokens": {str(i): tok.convert_ids_to_tokens(i) for i in sample},
        "special_ids": sorted(tok.all_special_ids),
        "added_special_ids": sorted(i for i, t in tok.added_tokens_decoder.items() if t.special),
        "cases": cases,
        "batch": padded,
    }
    out.update(special)
    return out


def chat_expectations(tok):
    out = []
    for conv in CONVERSATIONS:
        for agp in (True, False):
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)
            ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=agp, return_dict=False)
            out.append({"messages": conv, "add_generation_prompt": agp, "text": text, "ids": list(ids)})
    return out


# ---------------------------------------------------------------------------------------------- GPT-2 (real)

def make_gpt2():
    tok = AutoTokenizer.from_pretrained(GPT2_DIR)
    exp = tokenizer_expectations(tok, GPT2_DIR, TEXTS + hh_conversations())
    exp["source"] = "tokenizers/gpt2 from the shared data folder"
    write_json(OUT / "gpt2.expected.json", exp)


# -------------------------------------------------------------------------------------- synthetic tokenizers

def train_bpe(tokenizer, vocab_size, special_tokens, **kw):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False, **kw)
    tokenizer.train_from_iterator(hh_corpus(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def byte_level_vocab(vocab_size, pre_tokenizer, normalizer=None, specials=()):
    t = Tokenizer(models.BPE())
    t.normalizer = normalizer
    t.pre_tokenizer = pre_tokenizer
    return train_bpe(t, vocab_size, list(specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def fresh_dir(name):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def make_opt_style():
    # OPT: GPT-2's byte-level BPE with <s>=0, <pad>=1, </s>=2, <unk>=3, and </s> prepended to every sequence.
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab, merges = byte_level_vocab(700, pre_tokenizers.ByteLevel(add_prefix_space=False), specials=specials)
    tok = GPT2Tokenizer(vocab=vocab, merges=merges, bos_token="</s>", eos_token="</s>", unk_token="<unk>",
                        pad_token="<pad>", add_bos_token=True, model_max_length=2048)
    d = fresh_dir("opt_style")
    tok.save_pretrained(d)
    write_json(d / "config.json", {"model_type": "opt", "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1,
                                   "vocab_size": len(tok)})
    return d


def make_llama_style():
    # Llama-2: BPE with byte fallback (<0x00>..<0xFF> at ids 3..258), <unk>=0, <s>=1, </s>=2, Metaspace "▁".
    t = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trained, merges = train_bpe(t, 900, ["<unk>", "<s>", "</s>"], limit_alphabet=120)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False,
                         model_max_length=4096)
    tok.chat_template = TEMPLATES["llama2_chat"]
    d = fresh_dir("llama_style")
    tok.save_pretrained(d)  # transformers 5 writes the template to chat_template.jinja
    write_json(d / "config.json", {"model_type": "llama", "bos_token_id": 1, "eos_token_id": 2,
                                   "vocab_size": len(tok)})
    return d


QWEN2_PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                           r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")


def make_qwen2_style():
    # Qwen2: NFC, a split regex then byte-level BPE; <|endoftext|>, <|im_start|>, <|im_end|> appended; no BOS.
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    vocab, merges = byte_level_vocab(800, pre, normalizers.NFC())
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         unk_token=None, extra_special_tokens=["<|im_start|>", "<|im_end|>"],
                         model_max_length=32768)
    tok.chat_template = TEMPLATES["qwen2_5_instruct"]
    d = fresh_dir("qwen2_style")
    tok.save_pretrained(d, save_jinja_files=False)  # the older layout: chat_template inside tokenizer_config.json
    endoftext, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    write_json(d / "config.json", {"model_type": "qwen2", "bos_token_id": endoftext, "eos_token_id": im_end,
                                   "vocab_size": len(tok)})
    write_json(d / "generation_config.json", {"bos_token_id": endoftext, "eos_token_id": [im_end, endoftext],
                                              "pad_token_id": endoftext})
    return d


def make_synthetic():
    for name, make in (("opt_style", make_opt_style), ("llama_style", make_llama_style),
                       ("qwen2_style", make_qwen2_style)):
        d = make()
        tok = AutoTokenizer.from_pretrained(d)
        exp = tokenizer_expectations(tok, d, TEXTS + EXTRA_TEXTS[name] + hh_conversations()[:2])
        if tok.chat_template is not None:
            exp["chat"] = chat_expectations(tok)
        else:
            exp["chat"] = None
        write_json(OUT / f"{name}.expected.json", exp)


# ------------------------------------------------------------------------------------ DeepSpeed-Chat's form

def deepspeed_chat_prompt(turns):
    """DeepSpeed-Chat applications/DeepSpeed-Chat/inference/chatbot.py, main loop: `user_input` is the whole
    history; each turn appends f" {new_inputs}" with new_inputs = f"Human: {tmp}\\n Assistant: ", and after the
    reply the history becomes f"{output}\\n\\n", output being the prompt followed by the reply."""
    user_input = ""
    for i, (question, reply) in enumerate(turns):
        new_inputs = f"Human: {question}\n Assistant: "
        user_input += f" {new_inputs}"
        if reply is None:
            return user_input
        output = user_input + reply
        user_input = f"{output}\n\n"
    return user_input


def make_deepspeed_chat():
    d = OUT / "opt_style"
    tok = AutoTokenizer.from_pretrained(d)
    cases = []
    dialogs = [
        [("what is internet explorer?", None)],
        [("what is internet explorer?", "Internet Explorer is a web browser."), ("what is edge?", None)],
        [("Hi", "Hello! How can I help?"), ("Tell me a joke.", "Why did the chicken cross the road?"),
         ("Why?", None)],
    ]
    for dialog in dialogs:
        messages = []
        for q, r in dialog:
            messages.append({"role": "user", "content": q})
            if r is not None:
                messages.append({"role": "assistant", "content": r})
        prompt = deepspeed_chat_prompt(dialog)
        # The text-generation pipeline in chatbot.py tokenizes the prompt with the tokenizer's default special
        # tokens.
        cases.append({"messages": messages, "add_generation_prompt": True, "text": prompt,
                      "ids": tok(prompt)["input_ids"]})
    # A history that ends with the assistant's reply: what chatbot.py keeps between turns.
    history = [("Hi", "Hello! How can I help?")]
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]
    cases.append({"messages": messages, "add_generation_prompt": False, "text": deepspeed_chat_prompt(history),
                  "ids": tok(deepspeed_chat_prompt(history))["input_ids"]})
    write_json(OUT / "deepspeed_chat.expected.json", {"tokenizer": "opt_style", "cases": cases})


# ------------------------------------------------------------------------------------------ chat templates

TEMPLATES = {}
# Llama-2-chat's template, as in meta-llama/Llama-2-7b-chat-hf tokenizer_config.json (escapes inside literals).
TEMPLATES["llama2_chat"] = r"""{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"""
# Llama-3-Instruct (raw newlines inside literals; a filter inside +).
TEMPLATES["llama3_instruct"] = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
# Llama-3.1-style: {{- -}} trimming, `is defined`, `is string`, none, strftime_now guarded by a date_string.
TEMPLATES["llama3_1_style"] = r"""{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- if messages[0]['content'] is string %}
        {%- set system_message = messages[0]['content']|trim %}
    {%- else %}
        {%- set system_message = messages[0]['content'][0]['text']|trim %}
    {%- endif %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""
# Zephyr: block tags on their own lines (trim_blocks, lstrip_blocks).
TEMPLATES["zephyr"] = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
TEMPLATES["mistral_instruct"] = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
TEMPLATES["gemma_it"] = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
TEMPLATES["phi3"] = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
TEMPLATES["qwen2_instruct"] = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
# Qwen2.5-Instruct: tools through tojson, `is defined`, loop.last, indexing by loop.index0 +- 1.
TEMPLATES["qwen2_5_instruct"] = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
# Qwen3's template: namespace(), messages[::-1], reasoning split with Python string methods, enable_thinking.
TEMPLATES["qwen3"] = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""
# Python string methods that templates call (Qwen3 and DeepSeek-R1 style reasoning split), namespace().
TEMPLATES["string_methods"] = r"""{%- set ns = namespace(count=0) %}
{%- for message in messages %}
    {%- set content = message.content %}
    {%- if '</think>' in content %}
        {%- set content = content.split('</think>')[-1].lstrip('\n') %}
    {%- endif %}
    {%- set ns.count = ns.count + 1 %}
    {{- message.role.upper() + '|' + content.strip() + '|' + content.rstrip('.').lstrip('T') + '|' }}
    {%- if content.startswith('Try') %}{{ 'starts|' }}{% endif %}
    {%- if content.endswith(('.', '?')) %}{{ 'ends|' }}{% endif %}
    {{- content.split() | join('_') }}|{{ content.split('o', 1) | length }}|{{ content.replace('o', '0') }}
    {{- '\n' }}
{%- endfor %}
{{- ns.count }}"""

# `not x is defined` is `not (x is defined)` in jinja2; `strftime_now` and `raise_exception` are defined.
TEMPLATES["defined_checks"] = r"""{%- if strftime_now is defined %}S{% endif %}
{%- if raise_exception is defined %}R{% endif %}
{%- if not tools is defined %}{% set tools = none %}{% endif %}
{%- if not tools is none -%}
    T{{ tools | length }}
{%- endif %}
{%- if not date_string is defined %}{% set date_string = "26 Jul 2024" %}{% endif %}
{{- '|' + date_string + '|' }}
{%- if not 'x' in messages[0].content %}N{% endif %}
{%- if not messages[0].content is not string %}s{% endif %}
{%- if not messages|length > 3 %}<{% endif %}
{%- if not messages[0]['role'] in ['user', 'system'] %}odd{% endif %}"""

# transformers' tojson: json.dumps with ensure_ascii=False, and its indent / sort_keys / separators arguments.
TEMPLATES["tojson"] = """{{ x | tojson }}
{{ x | tojson(indent=2) }}
{{ x | tojson(sort_keys=true) }}
{{ x.z | tojson(separators=(',', ':')) }}"""

# transformers' {% generation %} block (marks assistant tokens), as SmolLM3- and TRL-style templates use it.
TEMPLATES["generation_block"] = """{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|assistant|>' }}{% generation %}{{ message.content + eos_token }}{% endgeneration %}
    {%- else %}
        {{- '<|' + message.role + '|>' + message.content }}
    {%- endif %}
    {{- '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}<|assistant|>{% endif %}"""

STRFTIME_FORMATS = ["%d %b %Y", "%Y-%m-%d %H:%M:%S", "%B %d, %Y", "%A %a %y %j %p %I", "100%% %m/%d"]


def make_templates():
    convs = CONVERSATIONS + [
        [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nA1."},
         {"role": "user", "content": "Q2\nline two?"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],  # roles do not alternate
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city, \u00b0C.",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}]
    json_values = {"a": [1, 2.5, "\u00e9\n\"\\", True, None], "b": {}, "c": [], "floats": [1e16, 1e-05, 0.0001, 123.0,
                                                                                -0.0, 1.5e300],
                   "z": {"y": 1, "x": [{"k": "v"}]}}
    # Extra template variables each template is also rendered with (besides none).
    variants = {
        "qwen2_5_instruct": [{"tools": tools}],
        "qwen3": [{"tools": tools}, {"enable_thinking": False}],
        "llama3_1_style": [{"date_string": "01 Jan 2025"}],
        "defined_checks": [{"tools": tools}, {"date_string": "01 Jan 2025"}],
    }
    cases = []
    for name, template in TEMPLATES.items():
        conversations = list(enumerate(convs))
        variable_sets = [None] + variants.get(name, [])
        if name == "tojson":
            conversations, variable_sets = conversations[:1], [{"x": json_values}]
        for ci, conv in conversations:
            for agp in (True, False):
                for extra in variable_sets:
                    kw = dict(extra or {})
                    tools_arg = kw.pop("tools", None)
                    case = {"template": name, "conversation": ci, "add_generation_prompt": agp,
                            "variables": extra or {}}
                    try:
                        rendered, _ = render_jinja_template([conv], tools=tools_arg, chat_template=template,
                                                            add_generation_prompt=agp, bos_token="<s>",
                                                            eos_token="</s>", **kw)
                        case["text"] = rendered[0]
                    except Exception as e:  # raise_exception() and friends
                        case["error"] = str(e)
                    cases.append(case)
    when = datetime.datetime(2024, 7, 26, 13, 5, 9)
    strftime = [{"format": f, "at": when.isoformat(), "text": when.strftime(f)} for f in STRFTIME_FORMATS]
    write_json(OUT / "templates.expected.json", {"templates": TEMPLATES, "conversations": convs, "cases": cases,
                                                 "special_tokens": {"bos_token": "<s>", "eos_token": "</s>"},
                                                 "strftime": strftime})


def main():
    if not GPT2_DIR.is_dir():
        sys.exit(f"GPT-2 tokenizer not found at {GPT2_DIR} (set RLHF4J_SHARED_DATA)")
    OUT.mkdir(parents=True, exist_ok=True)
    make_gpt2()
    make_synthetic()
    make_deepspeed_chat()
    make_templates()
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(REPO)}  {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
