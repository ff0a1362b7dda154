"""The graph view of an n-gram model: contexts are nodes, seen transitions are edges.

For a bigram model this is the word graph of the course notes the toolkit grew from: one node
per word, an edge w -> v for every transition seen in training, weighted by P(v | w). For order
N the nodes are the (N-1)-token contexts and the edge for token v goes from context h to the
context h[1:] + v, so the graph is the model's Markov chain over states.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..options import RUN

BLOCK_ROWS = 1 << 20  # n-grams read per block when choosing the most frequent contexts


def _node_name(tokens, joiner: str) -> str:
    return joiner.join(tokens)


def top_contexts(tables, counts: np.ndarray, k: int, block: int = BLOCK_ROWS) -> np.ndarray:
    """Rows (of order N-1) of the k contexts whose seen continuations are counted most often,
    ties to the earlier row: one pass over the highest order's keys and counts, a block at a
    time (a context's continuations are one run of the sorted keys)."""
    order = tables.order
    keys = tables.orders[order - 1].keys
    best_rows = np.zeros(0, dtype=np.int64)
    best_totals = np.zeros(0)
    for start in range(0, len(keys), block):
        context = keys[start : start + block] // tables.vocab_size
        weights = np.asarray(counts[start : start + block], dtype=np.float64)
        rows, first = np.unique(context, return_index=True)
        totals = np.add.reduceat(weights, first) if first.size else np.zeros(0)
        if best_rows.size and rows.size and rows[0] == best_rows[-1]:  # a run cut by the block edge
            best_totals[-1] += totals[0]
            rows, totals = rows[1:], totals[1:]
        best_rows, best_totals = np.concatenate([best_rows, rows]), np.concatenate([best_totals, totals])
        if best_rows.size > 4 * k + block:  # keep the leaders (and the last run, which may go on)
            keep = np.union1d(np.argsort(-best_totals[:-1], kind="stable")[:k], [best_rows.size - 1])
            best_rows, best_totals = best_rows[keep], best_totals[keep]
    chosen = np.lexsort((best_rows, -best_totals))[:k]
    return best_rows[chosen]


def transition_graph(model, *, max_contexts: int | None = None) -> nx.DiGraph:
    """A networkx DiGraph of the model's highest-order transitions.

    Edge attributes: token (the next token), probability (the smoothed P(token | context)) and
    count (times seen in training). max_contexts keeps only the most frequent contexts; then
    only their continuations are read from the tables (one pass over the top order's keys and
    counts picks them), so a memory-mapped model of any size gives its graph in bounded memory.
    """
    if max_contexts is not None:
        RUN["max_contexts"].check(max_contexts)
    tables = model._check_tables()
    vocab = model.tokenizer.vocab
    joiner = " " if model.tokenizer.level == "word" else ""
    order = tables.order
    table = tables.orders[order - 1]
    counts = model.counts_[order - 1]
    if max_contexts is not None and order > 1:
        contexts = np.sort(top_contexts(tables, counts, max_contexts))
        bounds = np.searchsorted(table.keys, np.stack([contexts, contexts + 1]) * tables.vocab_size)
        lengths = bounds[1] - bounds[0]
        rows = np.repeat(bounds[0] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    else:
        rows = np.arange(len(table.keys), dtype=np.int64)
    rows = rows[np.asarray(counts[rows]) > 0]
    grams = tables.row_tokens(order, rows)
    logprob, edge_counts = np.asarray(table.logprob[rows], dtype=np.float64), np.asarray(counts[rows])
    tokens = vocab.tokens
    graph = nx.DiGraph(order=order, smoothing=model.smoothing)
    for gram, lp, count in zip(grams.tolist(), logprob.tolist(), edge_counts.tolist()):
        source = _node_name([tokens[i] for i in gram[:-1]], joiner)
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
