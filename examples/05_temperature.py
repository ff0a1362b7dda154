"""05 - Temperature, top-k and top-p: how sampling reshapes the next-token distribution.

Teaches: a model gives a probability to every possible next token; sampling settings reshape
it before drawing. Temperature T < 1 sharpens it (towards always taking the most likely token),
T > 1 flattens it; top-k keeps only the k most likely tokens, top-p the fewest whose mass
reaches p. Entropy (in bits) measures how spread out the result is.

Run: python examples/05_temperature.py [OUTPUT_FOLDER] [CHECKPOINT_FOLDER] [CONTEXT]
  Without a checkpoint it counts a Kneser-Ney trigram on Brown; any saved model works, e.g. one
  written by `langmodels train gpt --corpus shakespeare --out checkpoints/gpt`.
"""

import sys
import tempfile
from pathlib import Path

import langmodels
from langmodels import corpora
from langmodels.inside import next_token_distributions, temperature_samples

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="langmodels-05-"))
out.mkdir(parents=True, exist_ok=True)

# 1. A model: the checkpoint given, or a trigram counted on 5,000 Brown sentences (a second).
if len(sys.argv) > 2:
    model = langmodels.load(sys.argv[2])
else:
    model = langmodels.TrigramLM("kneser-ney").fit(corpora.load("brown").train[:5000])
context = sys.argv[3] if len(sys.argv) > 3 else "He said that"
print(f"model: {model.name}; the next token after {context!r}")

# 2. The distribution reshaped five ways: the 8 likeliest tokens, and all the others summed in one row.
figure = out / "temperature.png"
tokens, settings = next_token_distributions(model, context, temperatures=(0.5, 1.0, 2.0), top_k=5, top_p=0.9,
                                            n_tokens=8, path=figure)
labels = [setting.label.split(" (")[0] for setting in settings]
print(f"\n{'token':<14}" + "".join(f"{label:>13}" for label in labels))
for row, token in enumerate([*map(repr, tokens), "(all others)"]):
    print(f"{token:<14}" + "".join(f"{setting.probabilities[row]:>13.3f}" for setting in settings))

# 3. How spread out each setting leaves the distribution.
print(f"\n{'tokens kept':<14}" + "".join(f"{setting.kept:>13,}" for setting in settings))
print(f"{'entropy, bits':<14}" + "".join(f"{setting.entropy_bits:>13.2f}" for setting in settings))
print("low temperature: nearly all the mass on a few tokens, low entropy; high temperature: mass spread thin;")
print("top-k and top-p cut the long tail to zero, so sampling never picks a very unlikely token")
print(f"wrote {figure}")

# 4. What it does to generated text: the same seeds at each temperature.
for temperature, samples in temperature_samples(model, context, temperatures=(0.5, 1.0, 2.0), samples=2,
                                                max_tokens=15).items():
    print(f"\nT = {temperature}:")
    for sample in samples:
        print(f"  {sample}")
