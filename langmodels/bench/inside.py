"""The report's "Inside the models" figures, drawn with langmodels.inside from the checkpoints of
one corpus's runs (the config's [inside] table says which corpus, and of what).

Which model gets which figure (the first seed of each model of its own, not a sweep or a mixture):

    graph        the first bigram (an n-gram model of order 2): its word graph around `word`, the
                 uniform graph of the course notes beside the counted one, and its smoothed
                 transition graph
    attention    every model with attention weights (the GPT, the masked encoder): `sentence`
    projection   every neural model: a PCA map of the embeddings of `words`
    analogies    every neural model: 3CosAdd accuracy on the shipped questions (corpora/analogies.txt)
    temperature  the first causal model with attention (the GPT): its next-token distribution
                 after `context` under temperature, top-k and top-p, with samples

A figure shows what the model knows: words outside its vocabulary are left off the map (and
named), and a start word it does not know leaves its graphs out with the reason. Alongside the
PNGs, `draw` returns the numbers the report's captions are computed from.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from ..corpora import corpora_dir
from ..errors import LangmodelsError
from ..families import build_model
from ..inside import (
    analogy_accuracy,
    attention_maps,
    draw_transition_graph,
    draw_uniform_vs_counted,
    embedding_projection,
    next_token_distributions,
    temperature_samples,
)
from ..inside.embeddings import ANALOGIES_FILE, embeddings_of
from ..inside.graphs import observed_successors, start_state
from ..ngram import NGramLM
from .config import InsideSpec
from .measure import _recorded

FIGURES = ("graph", "attention", "projection", "analogies", "temperature")
# The [inside] settings each figure reads: with the run's key, what its cache key holds.
READS = {"graph": ("word", "depth", "k"), "attention": ("sentence",), "projection": ("words",), "analogies": (),
         "temperature": ("context", "temperatures", "top_k", "top_p", "samples", "sample_tokens")}
SAMPLE_SEED = 0  # sample i at every temperature uses seed SAMPLE_SEED + i


def subjects(spec: InsideSpec, runs) -> dict[str, tuple[str, ...]]:
    """{run id: the figures it gets} among `runs` (RunSpecs), by the rules above, in config order."""
    first = {}
    for run in runs:
        if run.corpus == spec.corpus and run.in_summary and not run.components:
            first.setdefault(run.group, run)
    candidates = list(first.values())
    wanted: dict[str, list[str]] = {}

    def has(run, method: str) -> bool:
        return callable(getattr(run.model_class, method, None))

    bigram = next((run for run in candidates if issubclass(run.model_class, NGramLM)
                   and build_model(run.model_class, run.params).order == 2), None)
    if spec.word and bigram is not None:
        wanted.setdefault(bigram.run_id, []).append("graph")
    for run in candidates:
        if spec.sentence and has(run, "attention"):
            wanted.setdefault(run.run_id, []).append("attention")
        if has(run, "embeddings"):
            wanted.setdefault(run.run_id, []).extend(["projection"] * bool(spec.words) + ["analogies"])
    gpt = next((run for run in candidates if run.model_class.is_causal and has(run, "attention")), None)
    if spec.context and gpt is not None:
        wanted.setdefault(gpt.run_id, []).append("temperature")
    return {run_id: tuple(figures) for run_id, figures in wanted.items()}


def reads(spec: InsideSpec, figures) -> dict:
    """What the figures depend on besides the model: their [inside] settings (and the analogy
    questions' file), for the cache key."""
    material = {figure: {name: getattr(spec, name) for name in READS[figure]} for figure in figures}
    if "analogies" in figures:
        material["analogies"] = {"questions": hashlib.sha256((corpora_dir() / ANALOGIES_FILE).read_bytes()).hexdigest()}
    return material


def draw(model, figures, spec: InsideSpec, folder: Path) -> dict:
    """Write the figures of one model into `folder`; returns, per figure, its files and the
    numbers of its caption (or why it was left out), and the notes the model gave."""
    drawn = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for figure in figures:
            try:
                drawn[figure] = DRAWERS[figure](model, spec, folder)
            except LangmodelsError as error:  # a start word the model does not know, say: that figure only
                drawn[figure] = {"left_out": str(error)}
    return {"model_name": model.name, "figures": drawn, "notes": _recorded(caught)}


# ---- one function per figure --------------------------------------------------------------------


def transition_graphs(model, spec: InsideSpec, folder: Path) -> dict:
    files = ["graph-uniform-vs-counted.png", "graph-transitions.png"]
    _, counted = draw_uniform_vs_counted(model, spec.word, depth=spec.depth, k=spec.k, path=folder / files[0])
    smoothed = draw_transition_graph(model, spec.word, depth=spec.depth, k=spec.k, path=folder / files[1])
    seen, _ = observed_successors(model, start_state(model, spec.word))

    def first_steps(graph) -> list:
        root = graph.graph["root"]
        edges = sorted(graph.out_edges(root, data=True), key=lambda edge: -edge[2]["probability"])
        return [[data["token"], data["probability"]] for _, _, data in edges]

    return {"files": files, "word": spec.word, "level": model.tokenizer.level, "seen_successors": len(seen),
            "counted": first_steps(counted),
            "model": first_steps(smoothed), "states": counted.number_of_nodes()}


def attention(model, spec: InsideSpec, folder: Path) -> dict:
    files = ["attention.png"]
    weights, labels = attention_maps(model, spec.sentence, path=folder / files[0])
    mean = weights.mean(axis=(0, 1))  # (T, T): averaged over layers and heads
    # The sentence's last token: a masked encoder's last position is </s>.
    last = len(labels) - (1 if model.is_causal else 2)
    target = int(np.argmax(mean[last]))
    received = mean.sum(axis=0)  # the weight each position receives, summed over the queries
    top = int(np.argmax(received))
    return {"files": files, "layers": int(weights.shape[0]), "heads": int(weights.shape[1]), "tokens": labels,
            "last": labels[last], "last_attends_to": labels[target], "last_weight": float(mean[last, target]),
            "most_attended": labels[top], "most_attended_share": float(received[top] / len(labels))}


def projection(model, spec: InsideSpec, folder: Path) -> dict:
    files = ["projection.png"]
    embeddings = embeddings_of(model)
    words = list(dict.fromkeys(spec.words))
    known = [word for word in words if word in embeddings.vocab]
    unknown = [word for word in words if word not in embeddings.vocab]
    if len(known) < 2:
        return {"left_out": f"fewer than 2 of the words are in {model.name}'s vocabulary", "unknown": unknown}
    points = embedding_projection(model, known, path=folder / files[0])
    unit = embeddings.unit[[embeddings.vocab[word] for word in known]]
    similarity = unit @ unit.T  # cosine: the vectors have unit length
    np.fill_diagonal(similarity, -np.inf)
    i, j = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    return {"files": files, "points": {word: list(xy) for word, xy in points.items()}, "unknown": unknown,
            "closest": [known[i], known[j], float(similarity[i, j])]}


def analogies(model, spec: InsideSpec, folder: Path) -> dict:
    result = analogy_accuracy(model)
    return {key: result[key] for key in ("accuracy", "correct", "answered", "skipped", "questions", "categories")}


def temperature(model, spec: InsideSpec, folder: Path) -> dict:
    files = ["temperature.png"]
    tokens, settings = next_token_distributions(model, spec.context, temperatures=spec.temperatures,
                                                top_k=spec.top_k, top_p=spec.top_p, path=folder / files[0])
    samples = temperature_samples(model, spec.context, temperatures=spec.temperatures, samples=spec.samples,
                                  seed=SAMPLE_SEED, max_tokens=spec.sample_tokens)
    return {
        "files": files, "context": spec.context, "tokens": tokens,
        "settings": [{"label": s.label, "temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                      "probabilities": s.probabilities.tolist(), "kept": s.kept, "entropy_bits": s.entropy_bits}
                     for s in settings],
        "samples": [{"temperature": t, "texts": texts} for t, texts in samples.items()],
    }


DRAWERS = {"graph": transition_graphs, "attention": attention, "projection": projection, "analogies": analogies,
           "temperature": temperature}
