"""Attention maps: every layer and head of a transformer for one text, as a grid of heat maps.

Rows of the grid are layers, columns are heads. In each map row i is the query position and
column j the key position: the weight softmax(q_i . k_j / sqrt(d)) that position i gives to j
(Vaswani et al. 2017, eq. 1), so every row sums to 1; a causal model's upper triangle is 0.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..options import check_text
from .figures import check_figure_path, pyplot, save_figure, token_label

CELL_INCHES = (0.22, 2.2, 5.0)  # inches per token, and the smallest and largest heat map


def check_attention(model) -> None:
    """Refuse a model that has no attention weights to show, in one line."""
    if not callable(getattr(model, "attention", None)):
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(f"{name} has no attention to show; attention maps need a gpt or bert model")


def attention_tokens(model, text: str, length: int) -> list[str]:
    """The labels of the `length` positions `model.attention(text)` returns: <s>, the text's
    tokens (the last ones when the model kept only those), and </s> for a masked encoder."""
    vocab = model.tokenizer.vocab
    tokens = [model.tokenizer.token_text(i) for i in model.tokenizer.encode(text)]  # BPE pieces as text
    if model.is_causal:
        labels = [vocab.BOS, *tokens][-length:]
    else:
        labels = [vocab.BOS, *tokens[max(0, len(tokens) - (length - 2)) :], vocab.EOS]
    return labels if len(labels) == length else [str(i) for i in range(length)]


def attention_maps(model, text: str, *, path=None) -> tuple[np.ndarray, list[str]]:
    """The attention weights (layers, heads, T, T) of `text` and the T token labels; the grid of
    heat maps is written to path (.png or .svg) when given."""
    check_attention(model)
    if path is not None:
        check_figure_path(path)
    check_text(text, "attention_maps' text")
    if not text.strip():
        raise ConfigError("give a non-empty text to look at")
    weights = np.asarray(model.attention(text))  # (L, H, T, T)
    labels = attention_tokens(model, text, weights.shape[-1])
    if path is not None:
        save_figure(_heat_map_grid(weights, [token_label(t) for t in labels], model.name), path)
    return weights, labels


def _heat_map_grid(weights: np.ndarray, labels: list[str], title: str):
    n_layers, n_heads, T, _ = weights.shape
    per_token, smallest, largest = CELL_INCHES
    cell = float(np.clip(per_token * T, smallest, largest))
    font = float(np.clip(cell * 60 / max(T, 1), 4, 9))
    plt = pyplot()
    figure, axes = plt.subplots(n_layers, n_heads, figsize=(cell * n_heads + 1.6, cell * n_layers + 1.0),
                                squeeze=False, layout="constrained")
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer, head]
            image = ax.imshow(weights[layer, head], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
            ax.set_title(f"layer {layer + 1} head {head + 1}", fontsize=8)
            ax.set_xticks(range(T), labels if layer == n_layers - 1 else [""] * T, rotation=90, fontsize=font)
            ax.set_yticks(range(T), labels if head == 0 else [""] * T, fontsize=font)
    figure.supxlabel("attended to (key)", fontsize=9)
    figure.supylabel("attending (query)", fontsize=9)
    figure.suptitle(f"{title}: attention weights", fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.6, label="weight")
    return figure
