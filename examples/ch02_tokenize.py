"""Chapter 2: text to token ids: GPT-2's BPE, the book's word-level tokenizer, a BPE trained here.

python examples/ch02_tokenize.py [--vocab-size 1000]
"""

from __future__ import annotations

import argparse

from llm_data import BPETokenizer, SimpleTokenizerV2, get_tokenizer, python_docs_text

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--vocab-size", type=int, default=1000, help="size of the BPE vocabulary to train")
args = parser.parse_args()

text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
gpt2 = get_tokenizer("gpt2")
ids = gpt2.encode(text)
print("GPT-2 ids:", ids)  # the book's [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, ...]
assert gpt2.decode(ids) == text

corpus = python_docs_text()[:200_000]
simple = SimpleTokenizerV2.from_text(corpus)
print("word-level ids:", simple.encode("The interpreter reads a line of code."))
print("word-level round trip:", simple.decode(simple.encode("The interpreter reads a line of code.")))

bpe = BPETokenizer.train(corpus, args.vocab_size)
sample = "def parse(line): return line.split()"
print(f"BPE ({bpe.n_vocab} tokens) ids:", bpe.encode(sample))
assert bpe.decode(bpe.encode(sample)) == sample
print("GPT-2 needs", len(gpt2.encode(sample)), "tokens for it; our BPE needs", len(bpe.encode(sample)))
