"""The geometry of a neural model's token embeddings: a 2-D map of chosen words, and word-analogy
accuracy over a question set.

Both read the unit-length vectors of `model.embeddings()`, so distances are cosine distances.
Analogies are answered by 3CosAdd (Mikolov et al. 2013): for a : b :: c : ?, the word whose
vector is closest in cosine to b - a + c, the three question words and the specials excluded,
exactly as `Embeddings.analogy` answers one question.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..corpora import corpora_dir
from ..errors import ConfigError, CorpusError, InputError
from ..options import RUN, check_path, check_tokens, shown
from .figures import check_figure_path, pyplot, save_figure, token_label
from .lookup import require_tokens

METHODS = ("pca", "tsne")
ANALOGIES_FILE = "analogies.txt"
QUESTIONS_AT_ONCE = 512  # rows of the (questions, V) similarity matrix held at once

AnalogyQuestion = namedtuple("AnalogyQuestion", "category a b c d")


def embeddings_of(model):
    """The model's `Embeddings` (an `Embeddings` object passes through); a model without
    embeddings (an n-gram model counts, it does not embed) is refused in one line."""
    if hasattr(model, "unit") and hasattr(model, "vocab"):
        return model
    if not callable(getattr(model, "embeddings", None)):
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(f"{name} has no embeddings; use a neural model (mlp, lstm, gpt or bert)")
    return model.embeddings()


# ---- a 2-D map --------------------------------------------------------------------------------


def project(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """(n, d) vectors -> (n, 2) coordinates by PCA or t-SNE (van der Maaten & Hinton 2008), and
    the names of the two axes."""
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(vectors)
        return points, [f"component {i + 1} ({share:.0%} of the variance)"
                        for i, share in enumerate(pca.explained_variance_ratio_)]
    from sklearn.manifold import TSNE

    # t-SNE needs perplexity < number of points; 30 is its usual value for larger sets.
    perplexity = float(min(30.0, max(1.0, (len(vectors) - 1) / 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
    return points, ["t-SNE 1", "t-SNE 2"]


def embedding_projection(model, words, *, method: str = "pca", path=None, seed: int = 0) -> dict[str, tuple]:
    """2-D coordinates {word: (x, y)} of the words' unit embeddings, by 'pca' (default) or
    'tsne'; the scatter plot is written to path (.png or .svg) when given."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    RUN["projection seed"].check(seed, "seed")
    words = list(dict.fromkeys(check_tokens(words, "embedding_projection's words")))
    if path is not None:
        check_figure_path(path)
    embeddings = embeddings_of(model)
    if len(words) < 2:
        raise ConfigError(f"a map needs at least 2 different words, got {len(words)}")
    require_tokens(words, embeddings.vocab)
    vectors = embeddings.unit[[embeddings.vocab[word] for word in words]]
    points, axis_names = project(vectors.astype(np.float64), method, seed)
    if path is not None:
        plt = pyplot()
        figure, ax = plt.subplots(figsize=(7, 6))
        ax.scatter(points[:, 0], points[:, 1], s=18, color="#3b6ea5")
        for word, (x, y) in zip(words, points):
            ax.annotate(token_label(word), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=9)
        name = getattr(model, "name", "embeddings")
        ax.set_title(f"{name}: {len(words)} word embeddings, {'PCA' if method == 'pca' else 't-SNE'}", fontsize=10)
        ax.set_xlabel(axis_names[0], fontsize=9)
        ax.set_ylabel(axis_names[1], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.margins(0.12)
        figure.tight_layout()
        save_figure(figure, path)
    return {word: (float(x), float(y)) for word, (x, y) in zip(words, points)}


# ---- analogies ---------------------------------------------------------------------------------


def read_analogies(path=None) -> list[AnalogyQuestion]:
    """Questions from a file of lines 'a b c d' (a : b :: c : d) under ': category' headers;
    '#' lines are comments. The default is the set shipped in corpora/analogies.txt."""
    if path is not None:
        check_path(path, "read_analogies' file")
    path = Path(path) if path is not None else corpora_dir() / ANALOGIES_FILE
    if not path.is_file():
        raise CorpusError(f"{path}: no analogy question file there")
    questions, category = [], ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            category = line[1:].strip()
            continue
        words = line.split()
        if len(words) != 4:
            raise CorpusError(f"{path}, line {number}: an analogy question is 4 words 'a b c d', got {line!r}")
        questions.append(AnalogyQuestion(category, *words))
    if not questions:
        raise CorpusError(f"{path}: no analogy questions in it")
    return questions


def _tally(correct: int, answered: int, skipped: int) -> dict:
    return {"accuracy": correct / answered if answered else None, "correct": correct,
            "answered": answered, "skipped": skipped}


def _question(question, index: int) -> AnalogyQuestion:
    """An AnalogyQuestion from (category, a, b, c, d) or (a, b, c, d) strs; InputError otherwise."""
    if (isinstance(question, str) or not isinstance(question, Sequence) or len(question) not in (4, 5)
            or not all(isinstance(word, str) for word in question)):
        raise InputError(f"questions: entry {index} must be 4 words (a, b, c, d) or a category and 4 words, "
                         f"got {shown(question)}")
    return AnalogyQuestion(*question) if len(question) == 5 else AnalogyQuestion("", *question)


def analogy_accuracy(embeddings, questions=None) -> dict:
    """3CosAdd accuracy over questions (AnalogyQuestion or (category, a, b, c, d) tuples; by
    default the shipped set) of an `Embeddings` or a neural model.

    A question with a word outside the vocabulary is skipped, not counted wrong. Returns
    accuracy (correct / answered; None when nothing was answered), correct, answered, skipped,
    questions, and the same per category under 'categories'.
    """
    embeddings = embeddings_of(embeddings)
    questions = read_analogies() if questions is None else questions
    vocab, unit = embeddings.vocab, embeddings.unit
    if isinstance(questions, str) or not isinstance(questions, Sequence):
        raise InputError(f"questions must be a list of analogy questions, got {shown(questions)}")
    questions = [_question(q, i) for i, q in enumerate(questions)]
    known = np.array([all(w in vocab for w in q[1:]) for q in questions], dtype=bool)
    ids = np.array([[vocab[w] for w in q[1:]] for q in questions], dtype=np.int64).reshape(-1, 4)[known]
    hits = np.zeros(len(ids), dtype=bool)
    n_specials = len(vocab.SPECIALS)  # the specials are not words: never an answer
    for begin in range(0, len(ids), QUESTIONS_AT_ONCE):
        a, b, c, d = ids[begin : begin + QUESTIONS_AT_ONCE].T
        query = unit[b] - unit[a] + unit[c]  # (Q, dim); its length does not change the ranking
        similarity = query @ unit.T  # (Q, V)
        similarity[:, :n_specials] = -np.inf
        rows = np.arange(len(a))
        for excluded in (a, b, c):
            similarity[rows, excluded] = -np.inf
        hits[begin : begin + len(a)] = np.argmax(similarity, axis=1) == d
    categories = np.array([q.category for q in questions], dtype=object)
    correct_of = np.zeros(len(questions), dtype=bool)
    correct_of[known] = hits
    by_category = {}
    for category in dict.fromkeys(categories.tolist()):
        mine = categories == category
        by_category[category] = _tally(int(np.sum(correct_of & mine)), int(np.sum(known & mine)),
                                       int(np.sum(~known & mine)))
    result = _tally(int(hits.sum()), int(known.sum()), int((~known).sum()))
    return {**result, "questions": len(questions), "categories": by_category}
