"""03 - A neural n-gram model: Bengio et al.'s MLP (2003).

Teaches: a neural network can play the n-gram game. It reads the same two previous words as a
trigram, but through learned word vectors (embeddings) and a hidden layer instead of a count
table. Words used alike get close vectors, so what is learned about one word helps the others.

Run: python examples/03_neural_mlp.py
"""

import langmodels
from langmodels import corpora

# 1. 3,000 Brown sentences. Words seen fewer than 10 times become <unk>: a small vocabulary keeps
#    the softmax over all words cheap enough to train in seconds on a laptop.
brown = corpora.load("brown")
train, test = brown.train[:3000], brown.test[:300]

# 2. The count-based baseline: a Kneser-Ney trigram with the same vocabulary.
trigram = langmodels.TrigramLM("kneser-ney", min_count=10).fit(train)
vocabulary = len(trigram.tokenizer.vocab)
print(f"vocabulary: {vocabulary} words")

# 3. The MLP: 2 previous words -> 2 embeddings of 32 numbers -> 64 tanh units -> softmax over words.
#    It trains for 2 seconds of wall time: how many steps that is depends on your machine.
mlp = langmodels.MLPLM(order=3, n_embd=32, hidden=64, lr=5e-2, batch_size=32, warmup_steps=10, dropout=0.0,
                       min_count=10, threads=1)
mlp.fit(train, max_seconds=2.0, progress=False)
steps = mlp.curve_[-1]["step"]
print(f"MLP trained for {steps} steps of 32 sentences")

# 4. Perplexity on unseen sentences. Guessing uniformly would score the vocabulary size.
baseline = trigram.evaluate(test)
print(f"\ntest perplexity (lower is better; {baseline.n_unk / baseline.n_tokens:.0%} of the test words are <unk>,"
      " which is easy to predict, so compare only models with the same vocabulary)")
print(f"  uniform guess       {vocabulary:8.1f}")
print(f"  kneser-ney trigram  {baseline.perplexity:8.1f}")
print(f"  bengio MLP          {mlp.evaluate(test, progress=False).perplexity:8.1f}")
print("  (Bengio et al. 2003 beat the best n-grams with far longer training on 800,000 Brown words;"
      " how close do 2 seconds get?)")

# 5. What the embeddings learned: the nearest words by cosine similarity of their vectors.
print("\nnearest neighbours in the MLP's embedding space:")
embeddings = mlp.embeddings()
for word in ["the", "in", "was", "would"]:
    neighbours = ", ".join(f"{w} ({similarity:.2f})" for w, similarity in embeddings.nearest(word, k=5))
    print(f"  {word:>6}: {neighbours}")
print("  words that fill the same slot in a sentence (would / could / must) end up close together;")
print("  a count table has no notion of 'close': to it every word is a different row")

# 6. Both models as autocompletion.
print("\nafter 'he said that', the trigram expects:", [w for w, _ in trigram.top_next("he said that", k=5)])
print("after 'he said that', the MLP expects:    ", [w for w, _ in mlp.top_next("he said that", k=5)])
