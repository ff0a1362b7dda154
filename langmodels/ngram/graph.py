"""The graph view of an n-gram model: contexts are nodes, seen transitions are edges.

For a bigram model this is the word graph of the course notes the toolkit grew from: one node
per word, an edge w -> v for every transition seen in training, weighted by P(v | w). For order
N the nodes are the (N-1)-token contexts and the edge for token v goes from context h to the
context h[1:] + v, so the graph is the model's Markov chain over states.
"""

from __future__ import annotations

import networkx as nx
import numpy as np


def _node_name(tokens, joiner: str) -> str:
    return joiner.join(tokens)


def transition_graph(model, *, max_contexts: int | None = None) -> nx.DiGraph:
    """A networkx DiGraph of the model's highest-order transitions.

    Edge attributes: token (the next token), probability (the smoothed P(token | context)) and
    count (times seen in training). max_contexts keeps only the most frequent contexts.
    """
    tables = model._check_tables()
    vocab = model.tokenizer.vocab
    joiner = " " if model.tokenizer.level == "word" else ""
    order = tables.order
    table = tables.orders[order - 1]
    grams = tables.gram_tokens()[order - 1]
    counts = np.asarray(model.counts_[order - 1])
    seen = counts > 0
    grams, logprob, counts = grams[seen], table.logprob[seen], counts[seen]
    if order == 1:
        contexts = np.zeros((len(grams), 0), dtype=np.int64)
    else:
        contexts = grams[:, :-1]
    if max_contexts is not None and order > 1:
        _, inverse = np.unique(contexts, axis=0, return_inverse=True)
        totals = np.bincount(inverse.ravel(), weights=counts)
        keep = np.argsort(-totals, kind="stable")[:max_contexts]
        chosen = np.isin(inverse.ravel(), keep)
        grams, logprob, counts, contexts = grams[chosen], logprob[chosen], counts[chosen], contexts[chosen]
    tokens = vocab.tokens
    graph = nx.DiGraph(order=order, smoothing=model.smoothing)
    for gram, lp, count, context in zip(grams.tolist(), logprob.tolist(), counts.tolist(), contexts.tolist()):
        source = _node_name([tokens[i] for i in context], joiner)
        target = _node_name([tokens[i] for i in gram[1:]] if order > 1 else [tokens[gram[-1]]], joiner)
        graph.add_edge(source, target, token=tokens[gram[-1]], probability=float(np.exp(lp)), count=int(count))
    return graph


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz DOT text for a transition graph; edges labelled 'token p'."""
    lines = ["digraph ngram {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for node in graph.nodes:
        lines.append(f"  {_dot_quote(node or '(empty)')};")
    for source, target, data in graph.edges(data=True):
        label = f"{data['token']} {data['probability']:.3g}"
        edge = f"{_dot_quote(source or '(empty)')} -> {_dot_quote(target or '(empty)')}"
        lines.append(f"  {edge} [label={_dot_quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
