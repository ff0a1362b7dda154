"""Transition graphs of an n-gram model around a word, drawn with networkx and matplotlib.

Nodes are the model's states as in `ngram/graph.py`: for a bigram model one node per word (the
word graph of the course notes, equal words merged into one node), for order N the last N-1
tokens. From the start word each node is expanded to its k most probable successors, `depth`
levels deep. A start shorter than N-1 tokens is read as the model reads any short history: by
its lower orders (as nltk's `score(word, context)` does).

The same edges can be weighted three ways:

* ``model``: the model's own smoothed P(v | h);
* ``counted``: maximum likelihood from the training counts, c(h v) / c(h .);
* ``uniform``: 1 / N1+(h .) for every successor seen after h, the unweighted word graph of the
  notes, where every outgoing transition is equally likely.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..base import most_probable
from ..errors import ConfigError
from ..ngram import NGramLM
from ..options import RUN, check_text
from .figures import check_figure_path, pyplot, save_figure, token_label
from .lookup import require_tokens

WEIGHTS = ("model", "counted", "uniform")
MAX_NODES = 250  # beyond this a drawing is unreadable (and k**depth grows fast)
ROOT_COLOUR, NODE_COLOUR, EDGE_COLOUR = "#f4a261", "#cfe3f5", "#3b6ea5"


def _check_model(model) -> NGramLM:
    """The model, if it is a fitted n-gram model of order 2 or more; else ConfigError in one line."""
    if not isinstance(model, NGramLM):
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(f"{name} is not an n-gram model; transition graphs need a bigram, trigram or ngram model")
    if model.order < 2:
        raise ConfigError(f"{model.name} has no transitions to draw (order 1); use order 2 or more")
    model._check_tables()
    return model


def _check_size(depth, k) -> None:
    RUN["depth"].check(depth)
    RUN["k"].check(k)


def start_state(model: NGramLM, word: str) -> tuple[int, ...]:
    """Ids of the start word (or words: 'of the' for a trigram), its last order-1 tokens."""
    check_text(word, "the start word")
    tokens = model.tokenizer.tokenize(word) if word else []
    if not tokens:
        raise ConfigError("give a word to start the graph from")
    require_tokens(tokens, model.tokenizer.vocab)
    return tuple(int(i) for i in model.tokenizer.vocab.ids(tokens)[-(model.order - 1) :])


def observed_successors(model: NGramLM, history: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens seen after `history` in training and their counts c(history v), most frequent first."""
    tables = model._check_tables()
    n = len(history) + 1  # the order whose table holds history + v
    context = tables.context_id(np.asarray(history, dtype=np.int64))
    if context < 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    table = tables.orders[n - 1]
    V = tables.vocab_size
    # Keys are context * V + word, sorted: a context's continuations are one slice.
    lo, hi = np.searchsorted(table.keys, [context * V, (context + 1) * V])
    words, counts = table.keys[lo:hi] % V, np.asarray(model.counts_[n - 1][lo:hi], dtype=np.float64)
    seen = counts > 0
    order = np.argsort(-counts[seen], kind="stable")
    return words[seen][order], counts[seen][order]


def successors(model: NGramLM, history: tuple[int, ...], k: int, weights: str) -> list[tuple[int, float, int]]:
    """The k successors of a state as (token id, probability, training count)."""
    words, counts = observed_successors(model, history)
    if weights == "model":
        vocab = model.tokenizer.vocab
        seen = dict(zip(words.tolist(), counts.tolist()))
        best = most_probable(model.logprobs_after(np.asarray(history, dtype=np.int64)), vocab, k)
        return [(vocab[token], p, int(seen.get(vocab[token], 0))) for token, p in best if p > 0]
    if weights == "counted":
        probabilities = counts / max(counts.sum(), 1.0)  # c(h v) / c(h .)
    else:
        probabilities = np.full(len(words), 1.0 / max(len(words), 1))  # 1 / N1+(h .)
    return [(int(w), float(p), int(c)) for w, p, c in zip(words[:k], probabilities[:k], counts[:k])]


def successor_graph(model: NGramLM, word: str, *, depth: int = 2, k: int = 5, weights: str = "model") -> nx.DiGraph:
    """The states reachable from `word` in `depth` steps along each state's k best successors.

    Node attributes: layer (steps from the start, when first reached), tokens, and label (as
    drawn, whitespace made visible); edge attributes as in `NGramLM.graph()`: token, probability,
    count. weights: 'model', 'counted' or 'uniform' (see the module's docstring).
    """
    _check_model(model)
    _check_size(depth, k)
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if weights != "model" and not any(np.any(np.asarray(c) > 0) for c in model.counts_):
        raise ConfigError(f"{model.name} keeps no training counts (an ARPA file?); only its model graph can be drawn")
    vocab = model.tokenizer.vocab
    joiner = " " if model.tokenizer.level == "word" else ""

    def name(state):
        return joiner.join(vocab.token(i) for i in state)

    def label(state):
        return joiner.join(token_label(vocab.token(i)) for i in state)

    root = start_state(model, word)
    graph = nx.DiGraph(root=name(root), order=model.order, weights=weights, model=model.name)
    graph.add_node(name(root), layer=0, tokens=[vocab.token(i) for i in root], label=label(root))
    frontier = [root]
    for layer in range(1, depth + 1):
        reached = []
        for state in frontier:
            if state[-1] == vocab.eos_id:  # the end of the line has no successors
                continue
            for token, probability, count in successors(model, state, k, weights):
                child = (*state, token)[-(model.order - 1) :]
                if name(child) not in graph:
                    if graph.number_of_nodes() >= MAX_NODES:
                        raise ConfigError(
                            f"depth {depth} with k={k} reaches more than {MAX_NODES} states; use a smaller depth or k"
                        )
                    graph.add_node(name(child), layer=layer, tokens=[vocab.token(i) for i in child], label=label(child))
                    reached.append(child)
                graph.add_edge(name(state), name(child), token=vocab.token(token), probability=probability, count=count)
        frontier = reached
        if not frontier:  # nothing new to expand: the deeper levels are empty
            break
    return graph


# ---- drawing --------------------------------------------------------------------------------------


def _layout(graph: nx.DiGraph) -> dict:
    """Columns by layer, left to right (the rankdir=LR of `to_dot`); each column spread over the
    height and ordered by the mean height of its parents (one barycentre pass of Sugiyama et al.
    1981), which removes most crossings of a tree-like graph."""
    columns: dict[int, list] = {}
    for node, layer in graph.nodes(data="layer"):
        columns.setdefault(layer, []).append(node)
    pos: dict = {}
    for layer in sorted(columns):
        def parents_height(node, layer=layer):
            heights = [pos[p][1] for p in graph.predecessors(node) if p in pos and graph.nodes[p]["layer"] < layer]
            return -float(np.mean(heights)) if heights else 0.0

        nodes = sorted(columns[layer], key=parents_height)  # stable: ties keep the most probable first
        heights = 1.0 - 2.0 * (np.arange(len(nodes)) + 0.5) / len(nodes)
        pos.update({node: np.array([float(layer), y]) for node, y in zip(nodes, heights)})
    return pos


def _draw(graph: nx.DiGraph, ax, pos: dict, title: str) -> None:
    nodes = list(graph.nodes)
    loops = {u: p for u, v, p in graph.edges(data="probability") if u == v}
    labels = dict(graph.nodes(data="label"))
    # Nodes are drawn as their labels in boxes; the invisible marker of about the label's width
    # (its area in points^2) is what arrows stop at.
    sizes = [(5.0 * len(labels[node]) + 12) ** 2 for node in nodes]
    root = graph.graph["root"]
    for chosen, colour in (([root], ROOT_COLOUR), ([n for n in nodes if n != root], NODE_COLOUR)):
        nx.draw_networkx_labels(graph, pos, labels={n: labels[n] for n in chosen}, font_size=8, ax=ax,
                                bbox={"boxstyle": "round,pad=0.3", "fc": colour, "ec": "#555555"})
    for node, p in loops.items():  # a self-loop is written under its node: an arrow to itself is unreadable
        ax.annotate(f"loop {p:.2g}", pos[node], xytext=(0, -14), textcoords="offset points", ha="center",
                    fontsize=7, color=EDGE_COLOUR)
    layer = dict(graph.nodes(data="layer"))
    edges = [(u, v, p) for u, v, p in graph.edges(data="probability") if u != v]
    forward = [e for e in edges if layer[e[1]] > layer[e[0]]]
    # Edges within a column or back to an earlier one bend wide so they do not run under nodes.
    for group, curve in ((forward, "arc3,rad=0.08"), ([e for e in edges if e not in forward], "arc3,rad=0.45")):
        if not group:
            continue
        nx.draw_networkx_edges(
            graph, pos, edgelist=[(u, v) for u, v, _ in group], width=[0.6 + 7.0 * p for _, _, p in group],
            edge_color=EDGE_COLOUR, alpha=0.75, arrowsize=12, node_size=sizes, nodelist=nodes,
            connectionstyle=curve, ax=ax,
        )
        nx.draw_networkx_edge_labels(
            graph, pos, edge_labels={(u, v): f"{p:.2g}" for u, v, p in group}, font_size=7, connectionstyle=curve,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}, ax=ax,
        )
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    ax.margins(0.1)


def _figure_size(graph: nx.DiGraph, panels: int = 1) -> tuple[float, float]:
    layers = [data["layer"] for _, data in graph.nodes(data=True)]
    tallest = max(np.bincount(layers))
    return (panels * (2.6 * (max(layers) + 1) + 1.0), max(4.0, 0.42 * tallest + 1.0))


def draw_transition_graph(model: NGramLM, word: str, *, depth: int = 2, k: int = 5, path=None) -> nx.DiGraph:
    """The model's graph around `word` (edge width and label: P(v | h)); written to path (.png or
    .svg) when given. Returns the graph drawn."""
    if path is not None:
        check_figure_path(path)
    graph = successor_graph(model, word, depth=depth, k=k, weights="model")
    if path is not None:
        plt = pyplot()
        figure, ax = plt.subplots(figsize=_figure_size(graph))
        _draw(graph, ax, _layout(graph), f"{model.name}: top {k} successors of {word!r}, depth {depth}")
        figure.tight_layout()
        save_figure(figure, path)
    return graph


def draw_uniform_vs_counted(model: NGramLM, word: str, *, depth: int = 2, k: int = 5,
                            path=None) -> tuple[nx.DiGraph, nx.DiGraph]:
    """The same edges (each state's k most frequent successors) weighted as the unweighted word
    graph does (every seen successor equally likely) and by counting (maximum likelihood), side by
    side. Returns (uniform graph, counted graph)."""
    if path is not None:
        check_figure_path(path)
    uniform = successor_graph(model, word, depth=depth, k=k, weights="uniform")
    counted = successor_graph(model, word, depth=depth, k=k, weights="counted")
    if path is not None:
        plt = pyplot()
        figure, axes = plt.subplots(1, 2, figsize=_figure_size(counted, panels=2))
        pos = _layout(counted)  # both graphs have the same nodes: one layout for both panels
        _draw(uniform, axes[0], pos, "uniform: 1 / (successors seen after the state)")
        _draw(counted, axes[1], pos, "counted: c(state, next) / c(state)  (maximum likelihood)")
        figure.suptitle(f"{model.name} trained text: top {k} successors of {word!r}, depth {depth}", fontsize=11)
        figure.tight_layout()
        save_figure(figure, path)
    return uniform, counted
