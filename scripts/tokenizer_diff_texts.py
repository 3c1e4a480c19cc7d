"""Random texts for scripts/tokenizer_diff.sh, separated by "\n@@@\n": words, digits, every kind of whitespace,
contractions in both cases, many scripts, emoji and ZWJ sequences, combining marks, random code points, the
special-token texts of common vocabularies (as plain text), code, long texts, and a few invalid UTF-8 bytes.
usage: tokenizer_diff_texts.py SEED N OUT"""
import random
import sys

seed, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
pieces = ["a", "Z", "the", " quick", "Hello", "WORLD", " ", "  ", "   ", "    ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", "\r\n",
          "\r", " \n", "\n ", "0", "7", "42", "1234567", "3.14", "1,000", ".", ",", "!", "?", "...", "'s", "'S", "'LL", "'ll",
          "'Re", "'ve", "'M", "'d", "'T", "'", '"', "-", "--", "_", "(", ")", "[", "]", "{", "}", "<", ">", "/", "|", "$",
          "+", "=", "^", "~", "`", "#", "@", "%", "&", "*", "é", "ß", "ñ", "Ω", "ж", "日本", "語", "한국어", "ع", "עברית",
          "हिन्दी", "ไทย", "🦙", "😀", "👍🏽", "👨\u200d👩\u200d👧", "\u0301", "\u00a0", "\u2003", "\u3000", "\u200b",
          "\ufeff", "\u2581", "Ġ", "Ċ", "½", "²", "Ⅻ", "१२", "…", "—", "“", "”", "€", "©", "\x01", "\x7f", "\x0b", "\x0c",
          "\u0085", "\u180e", "\u2028", "ﬁ", "Å", "Å", "ǅ", "İ", "ς", "\U0001d400", "\ue000",
          # special-token texts of the vocabularies, in plain text
          "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|end|>", "<|user|>", "<|assistant|>",
          "<|begin_of_text|>", "<|eot_id|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<mask>",
          "<unused0>", "[multimodal]", "<|fim_prefix|>", "<fim_prefix>", "<table>", "<br>", "<h1>", "<｜begin▁of▁sentence｜>",
          "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\ta[i] = 0;\n}"]
def rand_cp():
    while True:
        c = rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff), rng.randint(0x3000, 0xd7ff),
                        rng.randint(0xe000, 0xffff), rng.randint(0x10000, 0x1faff)])
        if not (0xd800 <= c <= 0xdfff):
            return chr(c)
texts = []
while len(texts) < n:
    kind = rng.random()
    if kind < 0.6:
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
    elif kind < 0.8:
        s = "".join(rand_cp() if rng.random() < 0.5 else rng.choice(pieces) for _ in range(rng.randint(1, 30)))
    elif kind < 0.9:
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(100, 400)))
    else:
        s = "".join(rng.choice([" ", "  ", "\n", "\t", "a", "1", "'s", "\r\n"]) for _ in range(rng.randint(1, 40)))
    b = s.encode()
    if rng.random() < 0.05:  # some invalid UTF-8
        b = bytearray(b); b.insert(rng.randint(0, len(b)), rng.randint(0x80, 0xff)); b = bytes(b)
    if b"\n@@@\n" in b or not b:
        continue
    texts.append(b)
open(out, "wb").write(b"\n@@@\n".join(texts))
