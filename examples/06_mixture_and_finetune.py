"""06 - Mixing a neural model with an n-gram, and fine-tuning it on new text.

Teaches: (a) linear interpolation P(w|h) = l1 P_gpt(w|h) + l2 P_ngram(w|h), with the weights
fitted by EM on held-out text: the mixture is never worse than its worse part, and EM gives the
weight to whichever part predicts the held-out text better. (b) fine-tuning: continue training a
fitted model on text of another kind, starting from its weights instead of from scratch.

Run: python examples/06_mixture_and_finetune.py
"""

import warnings

import langmodels
from langmodels import corpora

# 1. Brown opens with news reports: 3,000 sentences to train on, 300 to fit the weights, 300 to test.
brown = corpora.load("brown")
news, heldout, test = brown.train[:3000], brown.train[3000:3300], brown.train[3300:3600]

# 2. Two very different models of the same text, sharing one vocabulary (min_count=10 for both).
ngram = langmodels.TrigramLM("kneser-ney", min_count=10).fit(news)
gpt = langmodels.GPTLM(n_layer=2, n_head=2, n_embd=64, context=64, batch_size=16, lr=1e-2, warmup_steps=10,
                       dropout=0.0, min_count=10, threads=1)
gpt.fit(news, max_seconds=1.5, progress=False)

# 3. EM: each iteration re-weights the parts by how much of each held-out word they explain.
mixture = langmodels.InterpolatedLM([gpt, ngram]).fit_weights(heldout)
print(f"EM: {len(mixture.em_history_) - 1} iterations, held-out log-likelihood per word "
      f"{mixture.em_history_[0]:.4f} -> {mixture.em_history_[-1]:.4f} nats (it never goes down)")
for model, weight in zip(mixture.models, mixture.weights_):
    print(f"  weight of {model.name:<18} {weight:.3f}")

# 4. Test perplexity of each part and of the mixture.
print("\ntest perplexity (lower is better)")
for model in [gpt, ngram, mixture]:
    print(f"  {model.name:<42} {model.evaluate(test, progress=False).perplexity:8.2f}")
stronger = mixture.models[int(mixture.weights_.argmax())]
print(f"  EM gave most weight to the {stronger.name}, the better predictor of the held-out text; a GPT trained")
print("  for minutes, not seconds, earns more. Mixing pays most when the parts make different mistakes.")

# 5. Fine-tuning: the news GPT continues training on fiction (the end of Brown) for 0.75 s. It keeps
#    its news vocabulary, so fiction words it never saw are read as <unk> (the library's note is muted).
fiction, fiction_test = brown.test[:1500], brown.test[-300:]
before = gpt.evaluate(fiction_test, progress=False)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="fine-tuning keeps")
    tuned = langmodels.GPTLM(lr=1e-2, warmup_steps=5).fit(fiction, max_seconds=0.75, resume_from=gpt, progress=False)
after = tuned.evaluate(fiction_test, progress=False)
print(f"\nfiction test perplexity of the news GPT: {before.perplexity:.2f} before fine-tuning, "
      f"{after.perplexity:.2f} after ({after.n_unk / after.n_tokens:.0%} of the fiction words are <unk> to it)")
print(f"the news GPT itself is untouched: {gpt.evaluate(fiction_test, progress=False).perplexity:.2f}")
