"""01 - A bigram model is a graph of words.

Teaches: counting P(word | previous word) from a handful of sentences, seeing the counts as a
weighted graph (every seen successor equally likely vs weighted by its count), and generating
sentences by walking that graph.

Run: python examples/01_bigram_graph.py [OUTPUT_FOLDER]   (figures go there; default: a new temp folder)
"""

import math
import sys
import tempfile
from pathlib import Path

import langmodels
from langmodels.inside import draw_uniform_vs_counted

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="langmodels-01-"))
out.mkdir(parents=True, exist_ok=True)

# 1. A tiny training text: one sentence per line.
text = [
    "the dog chased the cat",
    "the cat chased a mouse",
    "a mouse ate the cheese",
    "the dog ate the bone",
    "the cat ate the mouse",
]

# 2. Count. "mle" is plain relative frequency: P(w | prev) = count(prev w) / count(prev).
bigram = langmodels.BigramLM(smoothing="mle").fit(text)

# 3. The row of the table for "the": where can the model go after it?
print('P(next word | "the"), counted from the 5 sentences:')
for word, p in bigram.top_next("the", k=10):
    print(f"  P({word} | the) = {p:.3f}")
print("How sentences start, P(word | <s>):", ", ".join(f"{w} {p:.2f}" for w, p in bigram.top_next("", k=3)))

# 4. The same counts as a graph: left, every seen successor equally likely; right, weighted by counts.
figure = out / "bigram_graph.png"
draw_uniform_vs_counted(bigram, "the", depth=2, k=4, path=figure)
print(f"wrote {figure}")

# 5. A sentence's probability is the product of its transitions (end of line included).
for sentence in ["the cat chased a mouse", "the mouse chased the dog"]:
    p = math.exp(bigram.logprob(sentence))
    print(f"P({sentence!r}) = {p:.5f}")
print("  (the second is 0: the transition 'mouse chased' never occurs in the text; 02_smoothing.py fixes this)")

# 6. Generate: start at <s>, draw a next word from P(. | current word), stop at the end of line.
print("Sentences sampled from the graph:")
for seed in range(4):
    print("  " + bigram.generate(max_tokens=15, seed=seed))
