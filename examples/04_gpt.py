"""04 - A tiny GPT on Shakespeare, one character at a time.

Teaches: a transformer predicts the next character from everything before it (up to its
context), weighing the earlier positions with attention. Trained for seconds it already writes
Shakespeare-shaped text (NAMES:, line breaks, short words); its attention map shows where each
position looks; temperature trades safe text for varied text.

Run: python examples/04_gpt.py [OUTPUT_FOLDER]   (figures go there; default: a new temp folder)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import langmodels
from langmodels import corpora
from langmodels.inside import attention_maps

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="langmodels-04-"))
out.mkdir(parents=True, exist_ok=True)

# 1. Tiny Shakespeare: 1 M characters to learn from, read as one stream of characters.
shakespeare = corpora.load("shakespeare")
test = shakespeare.test[:300]  # the first 300 lines of the held-out text, about 8,000 characters
characters = len(set(shakespeare.train.text()))

# 2. A GPT with 2 layers of 2 attention heads, 64 numbers per position, 128 characters of context.
gpt = langmodels.GPTLM(n_layer=2, n_head=2, n_embd=64, context=128, batch_size=8, lr=6e-3, warmup_steps=10,
                       dropout=0.0, threads=1)
gpt.fit(shakespeare.train, max_seconds=2.0, progress=False)  # 2 seconds: far too little, and yet...
print(f"{gpt.name}: trained {gpt.curve_[-1]['step']} steps of 8 x 128 characters")

# 3. Bits per character: how many yes/no questions the model needs per character (lower is better).
bigram = langmodels.NGramLM(order=2, smoothing="witten-bell").fit(shakespeare.train)
print("bits per character on held-out text (given minutes, not seconds, the GPT ends far below the bigram):")
print(f"  uniform guess among {characters} characters  {np.log2(characters):.2f}")
print(f"  character bigram (counted)       {bigram.evaluate(test, mode='stream').bits_per_char:.2f}")
print(f"  GPT after 2 seconds              {gpt.evaluate(test, mode='stream', progress=False).bits_per_char:.2f}")

# 4. Samples at two temperatures, same seed: low T picks likely characters, high T takes risks.
for temperature in (0.5, 1.0):
    sample = gpt.generate("ROMEO:", max_tokens=100, temperature=temperature, seed=0)
    print(f"\n--- sample at temperature {temperature} ---\n{sample}")

# 5. The attention map: row i shows how position i spreads its attention over positions 0..i.
figure = out / "attention.png"
weights, labels = attention_maps(gpt, "To be, or not to be", path=figure)
layers, heads, rows, _ = weights.shape
print(f"\nattention weights: {layers} layers x {heads} heads, each {rows} x {rows} (<s> + the characters)")
print(f"every row sums to 1: {weights.sum(axis=-1).min():.3f}..{weights.sum(axis=-1).max():.3f}; "
      f"no position looks ahead: weight above the diagonal {np.triu(weights, k=1).max():.3f}")
print(f"wrote {figure}: bright cells are where a character looks; look for heads that find the spaces")

# 6. Autocomplete: the 5 most likely next characters.
for context in ["What is th", "KING HENR"]:
    guesses = ", ".join(f"{char!r} {p:.2f}" for char, p in gpt.top_next(context, k=5))
    print(f"after {context!r}: {guesses}")
