"""Writes the data fixtures under src/test/resources/fixtures/data/ (the Java package io.github.rlhf4j.data checks
itself against them).

  rm-static.jsonl, rm-static.jsonl.gz    preference rows in the Dahoas/rm-static schema (prompt, response, chosen,
                                         rejected), written here; the .gz is the same bytes compressed
  hh-rlhf.jsonl                          whole conversations (chosen, rejected), as Anthropic's hh-rlhf files
  prompts.jsonl, text.jsonl              the prompt-only and plain-text schemas
  bad-rows.jsonl, broken.jsonl           rows of each bad kind; a line that is not JSON
  split.expected.json                    DeepSpeed-Chat's get_raw_dataset_split_index and get_shuffle_idx
                                         (data_utils.py, transcribed below) run with numpy on several sizes, splits
                                         and seeds: the exact index lists each phase gets
  samples.expected.json                  DeepSpeed-Chat's create_dataset_split (steps 1, 2, 3), its collators
                                         DataCollatorReward and DataCollatorRLHF, and get_unsupervised_data's
                                         tokenize + group_texts, run with transformers' AutoTokenizer on the rows
                                         above, for GPT-2 (shared data folder) and the tiny OPT-style tokenizer
                                         (fixtures/tokenizers/opt_style, which prepends </s>)

  rm-static.parquet                      the rows of rm-static.jsonl plus one with a null `chosen`, Snappy-compressed
                                         (pyarrow's default), dictionary-encoded, in row groups of 4 rows (3 groups)
  rm-static-zstd.parquet                 the same, Zstandard-compressed: rlhf4j ships no zstd codec, so reading it
                                         must fail with a message that says what to add
  wrong-type.parquet                     `prompt` as int64 next to text columns

The Parquet files are written by Apache Arrow's Rust Parquet writer (the parquet-wasm build of arrow-rs, run by Node
through PARQUET_JS below): a different implementation from the reader rlhf4j uses, as Hugging Face's files come from
yet another (pyarrow, which the reference environment lacks). They are made only when PQGEN names a node_modules
folder holding parquet-wasm and apache-arrow; otherwise the committed ones are kept.

Run:  /work/.venv-ref/bin/python src/test/python/make_data_fixtures.py
      (Parquet too:  npm install --prefix /tmp/pqgen parquet-wasm@0.8.0 apache-arrow@21.2.0
                     PQGEN=/tmp/pqgen/node_modules /work/.venv-ref/bin/python src/test/python/make_data_fixtures.py)
Needs numpy, torch, transformers 5.x (and Node 18+ for Parquet). Files are written atomically (temp file, then
rename); the output is the same on every run (the .gz has no timestamp).
"""

import gzip
import io
import json
import os
import subprocess
import tempfile
from itertools import chain
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / "src/test/resources/fixtures/data"
SHARED = Path(os.environ.get("RLHF4J_SHARED_DATA", REPO.parent / "shared/data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
TOKENIZERS = {
    "gpt2": SHARED / "tokenizers/gpt2",
    "opt_style": REPO / "src/test/resources/fixtures/tokenizers/opt_style",
}

ASSISTANT = "\n\nAssistant:"
HH = SHARED / "hh-rlhf/harmless-base-sample.jsonl.gz"
EOT = "<|endoftext|>"  # DeepSpeed-Chat's default end_of_conversation_token
MAX_SEQ_LEN = 40  # small, so that some rows are truncated and others padded
MAX_PROMPT_SEQ_LEN = 24  # small, so that some prompts are dropped
BLOCK_SIZE = 16  # ptx: max_prompt_seq_len + max_answer_seq_len
MANY_TEXTS = 1200  # more than datasets.map's batch of 1000 rows, so group_texts runs on two chunks


def H(text):
    return "\n\nHuman: " + text


def A(text=None):
    return "\n\nAssistant:" if text is None else "\n\nAssistant: " + text


RM_STATIC = [
    {"prompt": H("What is the capital of France?") + A(), "response": " Paris.", "chosen": " Paris.",
     "rejected": " London."},
    {"prompt": H("How many legs does a spider have?") + A(), "response": " Eight.",
     "chosen": " A spider has eight legs.", "rejected": " Six, like an insect."},
    {"prompt": H("Can you suggest a name for my cat?") + A("Sure, what does the cat look like?")
               + H("She is grey and very fluffy.") + A(),
     "response": " How about Cloud?", "chosen": " How about Cloud, or Misty?", "rejected": " Dog."},
    {"prompt": H("Write one sentence about the sea.") + A(), "response": " The sea is wide.",
     "chosen": " The sea glitters under the morning sun while gulls circle above the harbour, calling to the"
               " fishing boats that slowly return with their nets full of silver fish.",
     "rejected": " Water."},
    {"prompt": H("I have a long question about gardening. My tomatoes get yellow leaves at the bottom every summer,"
                 " even though I water them every morning and use compost. What could be the reason, and what"
                 " should I change next year?") + A(),
     "response": " It may be early blight.", "chosen": " It may be early blight; remove the lower leaves.",
     "rejected": " Tomatoes are red."},
    {"prompt": H("Translate 'good morning' into German.") + A(), "response": " Guten Morgen.",
     "chosen": " Guten Morgen.", "rejected": " Bonjour."},
    {"prompt": H("What is 12 times 12?") + A(), "response": " 144.", "chosen": " 144.", "rejected": " 124."},
    {"prompt": H("Name a primary colour.") + A(), "response": " Blue.", "chosen": " Blue.",
     "rejected": " Green is a primary colour of paint."},
]

HH_RLHF = [
    # One turn: the prompt ends at the only Assistant turn.
    {"chosen": H("Is tea or coffee stronger?") + A("Coffee usually has more caffeine per cup."),
     "rejected": H("Is tea or coffee stronger?") + A("Tea.")},
    # Both answers start alike: the common prefix runs into them, the prompt is cut back to the last Assistant turn.
    {"chosen": H("Say something kind.") + A("I think you are doing great."),
     "rejected": H("Say something kind.") + A("I think so.")},
    # Several turns.
    {"chosen": H("Hi!") + A("Hello! How can I help?") + H("Tell me a fun fact.")
               + A("Honey never spoils."),
     "rejected": H("Hi!") + A("Hello! How can I help?") + H("Tell me a fun fact.") + A("No.")},
    # The conversations part before their last turn: the prompt is the common part through its last Assistant turn.
    {"chosen": H("Pick a number.") + A("Seven.") + H("Why seven?") + A("It is my favourite."),
     "rejected": H("Pick a number.") + A("Three.") + H("Why three?") + A("No reason.")},
    # The chosen answer is empty: a bad row.
    {"chosen": H("Are you there?") + A(), "rejected": H("Are you there?") + A("Yes.")},
]

PROMPTS = [
    {"prompt": H("Give me a word that rhymes with cat.") + A()},
    {"prompt": H("What colour is the sky on a clear day?") + A()},
    {"prompt": H("Summarise the plot of a long novel about a whale, a captain who hunts it across every ocean, and"
                 " the sailors who follow him to the end.") + A()},
    {"prompt": H("Count to three.") + A()},
]

TEXTS = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"text": "Rivers carry water from the mountains to the sea, shaping valleys over thousands of years."},
    {"text": "Bread rises because yeast makes gas."},
    {"text": "A library is a quiet place full of books, maps and old newspapers that anyone may read."},
    {"text": "Short."},
]

GOOD = {"prompt": H("Hello?") + A(), "response": " Hi.", "chosen": " Hi.", "rejected": " Go away."}
LONG_PROMPT = {"prompt": H("Please tell me, in as much detail as you can manage, every single step needed to bake a"
                           " loaf of sourdough bread at home, starting from making the starter.") + A(),
               "response": " Start with flour.", "chosen": " Start with flour and water.", "rejected": " Buy it."}
# (line, JSON text); a None text is a blank line, which is not a row.
BAD_ROWS = [
    json.dumps(GOOD),
    json.dumps({"prompt": GOOD["prompt"], "response": " x", "chosen": " x"}),  # missing 'rejected'
    json.dumps({**GOOD, "chosen": 42}),  # wrong type
    json.dumps({**GOOD, "prompt": None}),  # null
    json.dumps({**GOOD, "chosen": "   "}),  # empty text
    "",  # blank line: skipped silently, not a row
    json.dumps([1, 2, 3]),  # not an object
    json.dumps({**GOOD, "chosen": " Hello there."}),
    json.dumps({**GOOD, "rejected": {"text": " nested"}}),  # wrong type
    json.dumps(LONG_PROMPT),
]
BROKEN = [json.dumps(GOOD), json.dumps(GOOD), '{"prompt": "\\n\\nHuman: x", "chosen": ', json.dumps(GOOD)]


def write_bytes(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_json(path, obj):
    # One line: most of it is lists of token ids, which indentation would put one number a line.
    write_bytes(path, (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return buf.getvalue()


# ---------------------------------------------------------------- DeepSpeed-Chat's data_utils.py, transcribed

def get_shuffle_idx(seed, size):
    np_rng = np.random.RandomState(seed=seed)
    dtype_ = np.uint32
    if size >= (np.iinfo(np.uint32).max - 1):
        dtype_ = np.int64
    shuffle_idx = np.arange(start=0, stop=size, step=1, dtype=dtype_)
    np_rng.shuffle(shuffle_idx)
    return shuffle_idx


def get_raw_dataset_split_index(seed, data_split, data_size):
    """All phases' index lists, as get_raw_dataset_split_index writes them to its .npy files."""
    splits = [float(s) for s in data_split.split(',')]
    splits_sum = sum(splits)
    splits = [split / splits_sum for split in splits]
    splits_index = [0]
    for index, split in enumerate(splits):
        splits_index.append(splits_index[index] + int(round(split * float(data_size))))
    diff = splits_index[-1] - data_size
    for index in range(1, len(splits_index)):
        splits_index[index] -= diff
    assert splits_index[-1] == data_size
    shuffle_idx = get_shuffle_idx(seed, data_size)
    return splits_index, [shuffle_idx[splits_index[i]:splits_index[i + 1]].tolist() for i in range(len(splits))]


def phase_index(seed, data_split, phase, part, size, eval_size=None):
    """create_dataset's row indices for one phase and side: a dataset with eval rows (eval_size not None) splits each
    side; one without takes get_train_data/get_eval_data's seeded 9:1 cut first (Subset of a Subset)."""
    if eval_size is not None:
        return get_raw_dataset_split_index(seed, data_split, size if part == "train" else eval_size)[1][phase - 1]
    base = get_raw_dataset_split_index(seed, "9,1", size)[1][0 if part == "train" else 1]
    within = get_raw_dataset_split_index(seed, data_split, len(base))[1][phase - 1]
    return [base[i] for i in within]


def hh_bad_lines():
    """1-based lines of the hh-rlhf sample whose answer is empty once the prompt (the common beginning through its
    last Assistant turn) is cut off: rlhf4j skips them."""
    bad = []
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        for line, text in enumerate(f, 1):
            r = json.loads(text)
            c, rj = r["chosen"], r["rejected"]
            n = 0
            while n < min(len(c), len(rj)) and c[n] == rj[n]:
                n += 1
            end = c.rfind(ASSISTANT, 0, n) + len(ASSISTANT)
            if not c[end:].strip() or not rj[end:].strip():
                bad.append(line)
    return bad


def split_cases():
    cases = []
    for size, data_split, seed in [(2000, "2,4,4", 1234), (1800, "2,4,4", 1234), (200, "2,4,4", 1234),
                                   (5, "2,4,4", 1234), (10, "2,4,4", 1234), (7, "1,1,1", 42), (1, "1,1,1", 0),
                                   (2, "1,1,1", 3), (5, "10,0,0", 1234), (101, "6,2,2", 7), (3, "2,4,4", 1),
                                   (13, "1,2", 99), (1800, "9,1", 1234), (2000, "9,1", 1234), (0, "2,4,4", 1234),
                                   (25, "0.5,0.25,0.25", 2 ** 32 - 1)]:
            boundaries, phases = get_raw_dataset_split_index(seed, data_split, size)
            cases.append({"size": size, "split": data_split, "seed": seed, "boundaries": boundaries,
                          "phases": phases})
    shuffles = [{"seed": seed, "size": size, "index": get_shuffle_idx(seed, size).tolist()}
                for seed, size in [(1234, 10), (0, 1), (0, 2), (42, 1000), (2 ** 32 - 1, 37), (7, 0), (1235, 64)]]
    # The hh-rlhf sample (2000 rows, one file, so the 9:1 cut applies) and rm-static.jsonl (8 rows) blended:
    # phase 1's train rows of each, bad rows dropped, concatenated, reshuffled with the seed (create_prompt_dataset).
    bad = set(hh_bad_lines())
    parts = [[(0, i + 1) for i in phase_index(1234, "2,4,4", 1, "train", 2000) if i + 1 not in bad],
             [(1, i + 1) for i in phase_index(1234, "2,4,4", 1, "train", len(RM_STATIC))]]
    concatenated = parts[0] + parts[1]
    blend = [list(concatenated[i]) for i in get_shuffle_idx(1234, len(concatenated))]
    return {"source": "DeepSpeed-Chat dschat/utils/data/data_utils.py with numpy " + np.__version__,
            "cases": cases, "shuffles": shuffles,
            "hh_sample": {"bad_lines": sorted(bad), "seed": 1234, "split": "2,4,4",
                          "one_file": {f"{part}_{phase}": phase_index(1234, "2,4,4", phase, part, 2000)
                                       for part in ("train", "eval") for phase in (1, 2, 3)},
                          "with_eval_of_5": {f"{part}_{phase}": phase_index(1234, "2,4,4", phase, part, 2000, 5)
                                             for part in ("train", "eval") for phase in (1, 2, 3)}},
            "blend_phase1_train": {"datasets": ["hh-rlhf sample", "rm-static.jsonl"], "seed": 1234,
                                   "split": "2,4,4", "rows": blend}}


def tokenizer_for(name):
    # DeepSpeed-Chat's get_tokenizer (non-Llama): pad = eos, right padding.
    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZERS[name]))
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def ints(t):
    return t.tolist()


def samples(name):
    tokenizer = tokenizer_for(name)
    # create_dataset_split, train_phase 1: prompt + chosen + EOT, padded/truncated to max_seq_len; PromptDataset's labels.
    sft = []
    for row in RM_STATIC:
        chosen_token = tokenizer(row["prompt"] + row["chosen"] + EOT, max_length=MAX_SEQ_LEN, padding="max_length",
                                 truncation=True, return_tensors="pt")
        ids = chosen_token["input_ids"].squeeze(0)
        mask = chosen_token["attention_mask"].squeeze(0)
        sft.append({"input_ids": ints(ids), "attention_mask": ints(mask),
                    "labels": ints(torch.where(mask.bool(), ids, -100))})
    # train_phase 2 and DataCollatorReward: [all chosen; all rejected].
    data = []
    for row in RM_STATIC:
        c = tokenizer(row["prompt"] + row["chosen"] + EOT, max_length=MAX_SEQ_LEN, padding="max_length",
                      truncation=True, return_tensors="pt")
        r = tokenizer(row["prompt"] + row["rejected"] + EOT, max_length=MAX_SEQ_LEN, padding="max_length",
                      truncation=True, return_tensors="pt")
        data.append((c["input_ids"], c["attention_mask"], r["input_ids"], r["attention_mask"]))
    reward = {"input_ids": ints(torch.cat([f[0] for f in data] + [f[2] for f in data], dim=0)),
              "attention_mask": ints(torch.cat([f[1] for f in data] + [f[3] for f in data], dim=0))}
    # train_phase 3: prompts alone, longer than max_seq_len (= max_prompt_seq_len) dropped, stored flipped;
    # DataCollatorRLHF pads, pads to max_token_len, flips back.
    prompt_rows = RM_STATIC + PROMPTS
    kept, filtered, kept_rows = [], 0, []
    for i, row in enumerate(prompt_rows):
        prompt_token = tokenizer(row["prompt"], return_tensors="pt")
        if prompt_token["input_ids"].size()[-1] <= MAX_PROMPT_SEQ_LEN:
            kept.append((prompt_token["input_ids"].squeeze(0).flip(0),
                         prompt_token["attention_mask"].squeeze(0).flip(0), tokenizer.pad_token_id))
            kept_rows.append(i)
        else:
            filtered += 1
    pad_token_id = kept[-1][-1]
    prompt = pad_sequence([f[0] for f in kept], padding_value=pad_token_id, batch_first=True)
    prompt_mask = pad_sequence([f[1] for f in kept], padding_value=0, batch_first=True)
    pad_length = MAX_PROMPT_SEQ_LEN - prompt.size()[-1]
    if pad_length > 0:
        prompt = F.pad(prompt, pad=(0, pad_length), mode="constant", value=pad_token_id)
        prompt_mask = F.pad(prompt_mask, pad=(0, pad_length), mode="constant", value=0)
    ppo = {"kept_rows": kept_rows, "filtered": filtered, "prompt": ints(prompt.flip(1)),
           "prompt_att_mask": ints(prompt_mask.flip(1))}
    # get_unsupervised_data: tokenize every text, then group_texts on datasets.map's batches of 1000 rows.
    def group(texts):
        out = []
        for start in range(0, len(texts), 1000):
            examples = tokenizer(texts[start:start + 1000])
            concatenated = list(chain(*examples["input_ids"]))
            total_length = len(concatenated)
            if total_length >= BLOCK_SIZE:
                total_length = (total_length // BLOCK_SIZE) * BLOCK_SIZE
            out.extend(concatenated[i:i + BLOCK_SIZE] for i in range(0, total_length, BLOCK_SIZE))
        return out
    ptx = {"blocks": group([t["text"] for t in TEXTS]),
           "many_blocks": group([many_text(i) for i in range(MANY_TEXTS)])}
    # Step 3 with two datasets (rm-static.jsonl, prompts.jsonl), split 0,0,1 so that phase 3 gets every train row:
    # each dataset's prompts in split order, over-long ones dropped, then concatenated and reshuffled.
    kept_parts = []
    for rows in (RM_STATIC, PROMPTS):
        part = []
        for i in phase_index(1234, "0,0,1", 3, "train", len(rows)):
            ids = tokenizer(rows[i]["prompt"])["input_ids"]
            if len(ids) <= MAX_PROMPT_SEQ_LEN:
                part.append(ids)
        kept_parts.append(part)
    concatenated = kept_parts[0] + kept_parts[1]
    ppo_blend = {"split": "0,0,1", "seed": 1234,
                 "prompts": [concatenated[i] for i in get_shuffle_idx(1234, len(concatenated))]}
    return {"pad_token_id": tokenizer.pad_token_id, "sft": sft, "reward": reward, "ppo": ppo, "ptx": ptx,
            "ppo_blend": ppo_blend}


def many_text(i):
    """The texts of the two-chunk ptx case; the Java test builds the same strings."""
    return f"row {i}."


PARQUET_JS = r"""
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const [modules, out] = [process.env.PQGEN, process.argv[2]];
const require = createRequire(join(modules, "x.js"));
const arrow = await import(join(modules, "apache-arrow/Arrow.node.mjs"));
const pq = require(join(modules, "parquet-wasm/node/parquet_wasm.js"));

const rows = readFileSync(join(out, "rm-static.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
rows.push({ prompt: "\n\nHuman: Is this row complete?\n\nAssistant:", response: " No.", chosen: null, rejected: " No." });
const column = (name) => arrow.vectorFromArray(rows.map((r) => r[name]), new arrow.Utf8());

function write(file, table, compression) {
  const props = new pq.WriterPropertiesBuilder().setCompression(compression).setDictionaryEnabled(true)
    .setMaxRowGroupSize(4).setCreatedBy("rlhf4j make_data_fixtures.py (parquet-wasm)").build();
  const bytes = pq.writeParquet(pq.Table.fromIPCStream(arrow.tableToIPC(table, "stream")), props);
  const tmp = join(out, `.tmp-${file}`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, join(out, file));
}

const table = new arrow.Table({
  prompt: column("prompt"), response: column("response"), chosen: column("chosen"), rejected: column("rejected"),
});
write("rm-static.parquet", table, pq.Compression.SNAPPY);
write("rm-static-zstd.parquet", table, pq.Compression.ZSTD);
write("wrong-type.parquet", new arrow.Table({
  prompt: arrow.vectorFromArray(rows.map((_, i) => BigInt(i)), new arrow.Int64()),
  chosen: column("chosen"), rejected: column("rejected"),
}), pq.Compression.SNAPPY);
"""


def write_parquet():
    if not os.environ.get("PQGEN"):
        print("PQGEN not set: the Parquet fixtures are kept as they are")
        return
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "parquet.mjs"
        script.write_text(PARQUET_JS, encoding="utf-8")
        subprocess.run(["node", str(script), str(OUT)], check=True)


def main():
    write_bytes(OUT / "rm-static.jsonl", jsonl(RM_STATIC))
    write_bytes(OUT / "rm-static.jsonl.gz", gz(jsonl(RM_STATIC)))
    write_bytes(OUT / "hh-rlhf.jsonl", jsonl(HH_RLHF))
    write_bytes(OUT / "prompts.jsonl", jsonl(PROMPTS))
    write_bytes(OUT / "text.jsonl", jsonl(TEXTS))
    write_bytes(OUT / "bad-rows.jsonl", ("\n".join(BAD_ROWS) + "\n").encode("utf-8"))
    write_bytes(OUT / "broken.jsonl", ("\n".join(BROKEN) + "\n").encode("utf-8"))
    write_parquet()
    write_json(OUT / "split.expected.json", split_cases())
    write_json(OUT / "samples.expected.json", {
        "source": "DeepSpeed-Chat data_utils.py (create_dataset_split, DataCollatorReward, DataCollatorRLHF,"
                  " get_unsupervised_data) with transformers' AutoTokenizer",
        "end_of_conversation_token": EOT, "max_seq_len": MAX_SEQ_LEN, "max_prompt_seq_len": MAX_PROMPT_SEQ_LEN,
        "block_size": BLOCK_SIZE, "many_texts": MANY_TEXTS,
        "tokenizers": {name: samples(name) for name in TOKENIZERS}})
    for f in sorted(OUT.iterdir()):
        print(f"{f.stat().st_size:8d}  {f.relative_to(REPO)}")


if __name__ == "__main__":
    main()
