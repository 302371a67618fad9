#!/usr/bin/python3
"""Trains the tiny sentencepiece model the tokenizer tests use, and writes its golden ids.

    /usr/bin/python3 tools/make_tiny_sp.py        # from the repository root; needs python3-sentencepiece

writes
    tests/data/tiny-sp.model           a Llama-style sentencepiece model (BPE, byte fallback, identity
                                       normalisation, unk=0 bos=1 eos=2), ~200 learned pieces + 256 bytes
    tests/data/tiny_sp_golden.jsonl    one {"text", "ids", "hf_ids", "decoded"} object per line

"ids" is what the Python library's encode(text) gives; it never adds BOS. "hf_ids" is what Hugging
Face's LlamaTokenizer (add_bos_token=True, the default) gives for the same text: [bos_id] + ids, also
for the empty string. "decoded" is the library's decode(ids): the text again, except that a "▁"
in the text comes back as a space. Everything is deterministic: a seeded generator writes the training text, and
sentencepiece trains on it with one thread and no sampling, so rerunning gives the same bytes.
"""
import io
import json
import os
import random

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data")

NAMES = ["Mary", "John", "Anna", "Tom", "Alice", "Bob", "Sarah", "James"]
NOUNS = ["store", "park", "school", "garden", "river", "house", "market", "library", "station", "kitchen",
         "book", "drink", "letter", "ball", "flower", "apple", "window", "table", "dog", "cat"]
VERBS = ["gave", "took", "found", "saw", "bought", "sold", "wanted", "painted", "opened", "carried"]
PLACES = ["to the", "at the", "near the", "behind the", "inside the"]
ADJS = ["small", "green", "quiet", "old", "bright", "heavy", "little", "happy"]


def sentence(rng):
    """One short English sentence in the IOI style, sometimes with a number or a question."""
    a, b = rng.sample(NAMES, 2)
    s = rng.choice([
        f"When {a} and {b} went {rng.choice(PLACES)} {rng.choice(NOUNS)}, {b} {rng.choice(VERBS)} a "
        f"{rng.choice(ADJS)} {rng.choice(NOUNS)} to {a}.",
        f"{a} {rng.choice(VERBS)} {rng.randint(2, 99)} {rng.choice(NOUNS)}s {rng.choice(PLACES)} {rng.choice(NOUNS)}.",
        f"Why did {a} go {rng.choice(PLACES)} {rng.choice(ADJS)} {rng.choice(NOUNS)}?",
        f"The {rng.choice(ADJS)} {rng.choice(NOUNS)} is {rng.choice(PLACES)} {rng.choice(NOUNS)}, said {a}.",
    ])
    return s


def train(lines):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=200 + 256 + 3,     # learned pieces + byte fallback + unk/bos/eos
        byte_fallback=True,           # as Llama: unseen characters become <0xNN> pieces
        split_digits=True,            # as Llama
        add_dummy_prefix=True,        # as Llama: "Hello" is encoded as "▁Hello"
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
    )
    return model.getvalue()


def golden_texts(rng):
    edge = [
        "", " ", "  ", "a", "Hello", " Hello", "  two leading spaces", "trailing space ", "trailing two  ",
        "Hello world", "Hello\nworld", "tab\tseparated", "line one\r\nline two", "\n", "   \n\n  ",
        "When Mary and John went to the store, John gave a drink to",
        "When Mary and John went to the store, Anna gave a drink to",
        "12345", "3.14159", "1,000,000 apples", "Room 101.", "ALL CAPS TEXT", "MiXeD cAsE",
        "don't stop", "it's Mary's book", "quotes \"here\" and 'there'", "a-b_c/d\\e",
        "café", "naïve résumé", "日本語", "Привет мир", "emoji 😀 here", "👨‍👩‍👧", "zero\u200bwidth",
        "unk char ŋ", "<s>", "</s>", "▁already▁has▁marks",
    ]
    generated = [sentence(rng) for _ in range(10)]
    return edge + generated


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = random.Random(20240611)
    lines = [sentence(rng) for _ in range(3000)]
    proto = train(lines)
    with open(os.path.join(OUT_DIR, "tiny-sp.model"), "wb") as f:
        f.write(proto)

    sp = spm.SentencePieceProcessor(model_proto=proto)
    with open(os.path.join(OUT_DIR, "tiny_sp_golden.jsonl"), "w", encoding="utf-8") as f:
        for text in golden_texts(random.Random(7)):
            ids = sp.encode(text)
            hf_ids = [sp.bos_id()] + ids
            # decode(ids) is the text itself except where the text holds "▁" (it decodes as a space).
            decoded = sp.decode(ids)
            assert sp.decode(hf_ids) == decoded  # BOS decodes to nothing
            line = {"text": text, "ids": ids, "hf_ids": hf_ids, "decoded": decoded}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"tiny-sp.model: {len(proto)} bytes, {sp.get_piece_size()} pieces, bos={sp.bos_id()}")


if __name__ == "__main__":
    main()
