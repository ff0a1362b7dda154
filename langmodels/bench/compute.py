"""Training compute: an estimate of the floating-point operations one training token costs.

    C = 6 M + 12 L T d        FLOPs per training token (forward and backward)

M counts the weights that multiply every token's activations once: each costs 2 FLOPs forward
(a multiply and an add) and 4 backward (the gradients of its input and of itself), Kaplan et al.
(2020, sec. 2.1)'s C = 6N. M is read from the torch module: every nn.Linear, an LSTM's input-to-
hidden and hidden-to-hidden matrices (4 gates per layer), and the output layer over the vocabulary,
which Kaplan et al.'s N leaves out but which is a large share of these small models' cost (a tied
output layer counts its embedding matrix here). An adaptive softmax (Grave et al. 2017) counts its
head for every token and each tail cluster's two projections for the share of training targets
that fall in it, as training runs them. Embedding lookups, biases, normalisations, activations and
the softmax itself are left out: O(d) per token against O(d^2).

The second term is self-attention's scores and weighted sum, 2 x 2 T d FLOPs forward per token and
layer against the T positions of the training context, times 3 with the backward pass: PaLM's
6N + 12 L H Q T (Chowdhery et al. 2022, app. B; H Q = d), the formula nanoGPT's MFU uses. Kaplan
et al. count half of it (6 L T d: the causal mask). T is the context the model was built with;
training batches of lines shorter than it compute less, so the term is an upper bound there.
"""

from __future__ import annotations

import numpy as np

MATMUL_FLOPS = 6  # per weight and token: 2 forward, 4 backward
ATTENTION_FLOPS = 12  # per token, layer, position of context and unit of width (PaLM app. B)


def training_flops(model, train=None) -> dict | None:
    """FLOPs per training token of a fitted torch model and their parts, or None for a model
    without a torch module (an n-gram model counts, it does not multiply). train: the training
    text, read for an adaptive softmax's tail shares (each tail counted whole without it)."""
    module = getattr(model, "module_", None)
    if module is None or not hasattr(module, "modules"):
        return None
    from torch import nn

    from ..neural.attention import SelfAttention
    from ..neural.output import OutputLayer

    matmul, output, attention_width = 0.0, 0.0, 0
    covered: set[int] = set()  # parameters counted through their output layer
    for layer in module.modules():
        if isinstance(layer, OutputLayer):
            vocabulary = len(model.tokenizer.vocab)
            output += output_weights(layer, module, vocabulary, _tail_shares(model, layer, train))
            covered.update(id(p) for p in layer.parameters())
        elif isinstance(layer, nn.Linear) and id(layer.weight) not in covered:
            matmul += layer.weight.numel()
        elif isinstance(layer, nn.LSTM | nn.GRU | nn.RNN):
            matmul += sum(p.numel() for name, p in layer.named_parameters() if name.startswith("weight_"))
        if isinstance(layer, SelfAttention):
            attention_width += layer.qkv.in_features  # summed over layers: L d
    context = (model.get_params().get("context") or 0) if attention_width else None
    attention = ATTENTION_FLOPS * attention_width * (context or 0)
    return {
        "flops_per_token": MATMUL_FLOPS * (matmul + output) + attention,
        "matmul_weights": int(matmul),
        "output_weights": output,  # per token: an adaptive softmax's tails weighted by their shares
        "attention_flops": attention,
        "context": context,  # T of the attention term (None without attention)
    }


def output_weights(layer, module, vocabulary: int, shares: list[float] | None) -> float:
    """Weights of the output layer that multiply a token's vector, on average over tokens (shares:
    of the training targets in each adaptive tail cluster; None: each tail counted whole)."""
    from torch import nn

    if layer.adaptive is not None:
        head = layer.adaptive.head.weight.numel()
        tails = [sum(p.numel() for p in tail.parameters() if p.dim() == 2) for tail in layer.adaptive.tail]
        shares = shares if shares is not None else [1.0] * len(tails)
        return head + sum(share * size for share, size in zip(shares, tails))
    if layer.linear is not None:
        return layer.linear.weight.numel()
    tied = [m for m in module.modules() if isinstance(m, nn.Embedding) and m.num_embeddings == vocabulary]
    return tied[0].weight.numel()  # the token embedding, read as the output matrix (Press & Wolf 2017)


def _tail_shares(model, layer, train) -> list[float] | None:
    """The share of training targets in each tail cluster of an adaptive softmax (ids are sorted
    by frequency, so a cluster is a range of ids), from the training text's ids."""
    if layer.adaptive is None or train is None:
        return None
    from ..token_ids import token_ids

    ids = token_ids(train, model.tokenizer)
    targets = len(ids.ids) + len(ids.offsets) - 1  # every token and each line's end, a head token
    bounds = layer.adaptive.cutoffs  # [cutoffs..., V]
    counts = np.bincount(np.searchsorted(bounds, np.asarray(ids.ids), side="right"), minlength=len(bounds))
    return [float(count) / targets for count in counts[1:len(bounds)]]
