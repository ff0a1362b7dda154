"""02 - Why n-gram models need smoothing.

Teaches: perplexity as the score of a language model, how it changes with the order n, and why
the unsmoothed (maximum-likelihood) model is useless on new text: one unseen n-gram gives the
whole test text probability zero, so its perplexity is infinite. Smoothing moves a little
probability to what was never seen.

Run: python examples/02_smoothing.py
"""

import itertools
import warnings

import langmodels
from langmodels import corpora

# The library warns when a perplexity is infinite; here the table shows it, so the warning is muted.
warnings.filterwarnings("ignore", message=".*probability zero")

# 1. A slice of the Brown corpus: 5,000 sentences to count, 500 unseen ones to test on.
brown = corpora.load("brown")
train, test = brown.train[:5000], brown.test[:500]
print(f"train: {len(train)} sentences, test: {len(test)} sentences (Brown corpus)")

# 2. One model per (smoothing, order); perplexity = exp(average negative log-probability per word).
smoothings = ["mle", "laplace", "witten-bell", "kneser-ney"]
orders = [1, 2, 3, 4]
print("\ntest perplexity (lower is better; inf = some test word got probability 0)")
print(f"{'smoothing':<12}" + "".join(f"{n}-gram".rjust(10) for n in orders) + "   test words with P = 0")
models, perplexity = {}, {}
for smoothing in smoothings:
    row, zeros = "", []
    for n in orders:
        models[smoothing, n] = model = langmodels.NGramLM(order=n, smoothing=smoothing).fit(train)
        result = model.evaluate(test)
        perplexity[smoothing, n] = result.perplexity
        row += f"{result.perplexity:>10.1f}"
        zeros.append(result.n_zero_prob)
    print(f"{smoothing:<12}{row}   {zeros}")

# 3. Where the infinity comes from: the first test bigram the training text never contained.
mle, kneser_ney, laplace = models["mle", 2], models["kneser-ney", 2], models["laplace", 2]
for line in test:
    words = ["<s>", *line.split()]
    unseen = [(a, b) for a, b in itertools.pairwise(words) if mle.score(b, [a]) == 0]
    if unseen:
        previous, word = unseen[0]
        break
print(f"\nThe bigram '{previous} {word}' is in the test text but never in the training text:")
for name, model in [("mle", mle), ("laplace", laplace), ("kneser-ney", kneser_ney)]:
    print(f"  {name:<11} P({word} | {previous}) = {model.score(word, [previous]):.6f}")
print("  one zero makes the product of all the test probabilities zero: log 0 = -inf, perplexity = inf")

# 4. The lessons in numbers.
best = min(perplexity, key=perplexity.get)
print(f"\nbest model: {best[0]} {best[1]}-gram, perplexity {perplexity[best]:.1f}")
print(f"laplace {best[1]}-gram: {perplexity['laplace', best[1]]:.1f} "
      "(adding one to every count gives too much to the unseen)")
print("longer contexts help only with good smoothing: most long n-grams of new text were never seen")
