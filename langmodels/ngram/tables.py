"""N-gram probability tables in back-off form, and scoring with them.

This is the ARPA view of a model: every seen n-gram carries its final probability P(w | h)
(already interpolated), every n-gram that serves as a context carries a back-off weight gamma,
and for an unseen n-gram

    log P(w | h) = log gamma(h) + log P(w | h')      (h seen as an n-gram; else gamma = 1)

which for an interpolated model is exactly the interpolation formula, because alpha(w | h) = 0
for an unseen continuation. For the estimators whose lower distribution is the uniform one
(mle, uniform, laplace, lidstone) an unseen continuation of a seen context gets gamma(h) / V
instead, and a context never seen falls back to its longest seen suffix.

Each order keeps its n-grams as sorted int64 keys ``context_id * V + word`` (sorted, so a
context's continuations are one slice) and a probing hash index over them for batch lookups:
one array walk per order for a whole batch of positions, no per-token Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counting import NGramCounts
from .probing import ProbingIndex
from .smoothing import Smoothing


def gather(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """values[ids] where an id of -1 (read as the last entry) is masked off by the caller."""
    return values[ids] if values.size else np.zeros(ids.size, dtype=values.dtype)


@dataclass
class OrderTable:
    """The n-grams of one order: sorted keys and their log-probability and log back-off."""

    keys: np.ndarray  # (G,) int64, context_id * V + word, sorted (order 1: the word ids)
    logprob: np.ndarray  # (G,) natural log P(w | h)
    logbackoff: np.ndarray  # (G,) natural log gamma of this n-gram as a context (0 if none)
    is_context: np.ndarray  # (G,) bool: some continuation of this n-gram was seen


class BackoffTables:
    """Orders 1..N of a back-off model over a vocabulary of V ids, with vectorised lookups."""

    def __init__(
        self,
        orders: list[OrderTable],
        vocab_size: int,
        support: np.ndarray,
        *,
        bos_id: int,
        lower: str = "recursive",
        unseen_context_logbackoff: float = 0.0,
    ):
        self.orders: list[OrderTable] = []
        self.indexes: list[ProbingIndex | None] = []  # order 1 needs none: its ids are the words
        self.vocab_size = vocab_size
        for table in orders:
            self.append(table)
        self.support = support  # (V,) bool: ids that can be predicted
        self.log_uniform = -np.log(max(int(support.sum()), 1))
        self.bos_id = bos_id
        self.lower = lower
        self.unseen_context_logbackoff = unseen_context_logbackoff

    @property
    def order(self) -> int:
        return len(self.orders)

    def append(self, table: OrderTable) -> None:
        """Add the next order's table (and its hash index)."""
        self.indexes.append(ProbingIndex(table.keys) if self.orders else None)
        self.orders.append(table)

    # ---- construction from counts --------------------------------------------------------

    @classmethod
    def from_counts(cls, counts: NGramCounts, smoothing: Smoothing, support: np.ndarray) -> BackoffTables:
        """Turn alpha/gamma into final probabilities, lowest order first (Chen & Goodman eq. 1)."""
        support_size = int(support.sum())
        probs: list[np.ndarray] = []
        gammas: list[np.ndarray] = []  # gammas[n - 1]: per context of order n, i.e. per (n-1)-gram
        for n in range(1, counts.order + 1):
            table = counts[n]
            alpha, gamma = smoothing.alpha_gamma(counts, n, support_size)
            if smoothing.lower == "uniform" or n == 1:
                lower = np.full(len(table), 1.0 / support_size)
            else:
                lower = probs[-1][table.suffix]
            backed_off = gamma[table.context] * lower
            if smoothing.interpolated:
                prob = alpha + backed_off
            else:
                prob = np.where(table.count > 0, alpha, backed_off)
            if n == 1:
                prob = np.where(support, prob, 0.0)
            probs.append(prob)
            gammas.append(gamma)
        orders = []
        for n in range(1, counts.order + 1):
            table = counts[n]
            if n < counts.order:
                above = counts[n + 1]
                is_context = np.bincount(above.context, minlength=len(table)) > 0
                with np.errstate(divide="ignore"):  # gamma = 0 (mle, uniform) is log 0 = -inf
                    logbackoff = np.where(is_context, np.log(np.where(is_context, gammas[n], 1.0)), 0.0)
            else:
                is_context = np.zeros(len(table), dtype=bool)
                logbackoff = np.zeros(len(table))
            keys = table.context * counts.vocab_size + table.word
            with np.errstate(divide="ignore"):
                orders.append(OrderTable(keys, np.log(probs[n - 1]), logbackoff, is_context))
        unseen = 0.0 if smoothing.normalised else float(np.log(getattr(smoothing, "backoff", 1.0)))
        return cls(
            orders,
            counts.vocab_size,
            support,
            bos_id=counts.bos_id,
            lower=smoothing.lower,
            unseen_context_logbackoff=unseen,
        )

    # ---- lookups -------------------------------------------------------------------------

    def lookup(self, n: int, context_ids: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids in order n of the n-grams (context, word), -1 where absent or context is -1."""
        if n == 1:
            return np.asarray(words, dtype=np.int64)
        # Keys are >= 0, so the query -1 (an unseen context) never matches.
        query = np.where(context_ids >= 0, context_ids * self.vocab_size + words, -1)
        return self.indexes[n - 1].find(query)

    def gram_ids(self, tokens: np.ndarray, position: np.ndarray) -> list[np.ndarray]:
        """ids[n - 1][i] = id of the n-gram ending at position i (-1 if unseen or crossing a line)."""
        ids = [tokens]
        for n in range(2, self.order + 1):
            # The (n-1)-gram ending just before i is its context, if the n-gram fits in the line.
            context = np.concatenate([[-1], np.where(position[1:] >= n - 1, ids[-1][:-1], -1)])[: tokens.size]
            ids.append(self.lookup(n, context, tokens))
        return ids

    # ---- scoring -------------------------------------------------------------------------

    def score_positions(self, tokens: np.ndarray, position: np.ndarray) -> np.ndarray:
        """log P(tokens[i] | its line up to i) for every position i with position[i] > 0.

        Walks down from the highest order: a position takes the first order whose n-gram was
        seen, plus the back-off weights of the contexts it passed on the way. Every array below
        covers positions 1.. (slices, not copies; the <s> among them are dropped at the end),
        updated whole with np.where (masked indexing costs several times more at these sizes);
        an id of -1 reads the last table entry, always under a mask that discards it.
        """
        ids = self.gram_ids(tokens, position)
        depth = position[1:]  # an n-gram ending here lies inside the line iff depth >= n - 1
        result = np.zeros(depth.size)
        accumulated = np.zeros(depth.size)
        pending = np.ones(depth.size, dtype=bool)
        for n in range(self.order, 1, -1):
            gram = ids[n - 1][1:]  # >= 0 only if its context was seen and it fits the line
            hit = pending & (gram >= 0)
            result = np.where(hit, accumulated + gather(self.orders[n - 1].logprob, gram), result)
            pending &= gram < 0
            context = ids[n - 2][:-1]
            lower_table = self.orders[n - 2]
            seen = pending & (context >= 0)
            if self.lower == "uniform":
                # A context with continuations gives unseen words gamma(h) / V; one without falls through.
                usable = seen & gather(lower_table.is_context, context)
                backed = accumulated + gather(lower_table.logbackoff, context) + self.log_uniform
                result = np.where(usable, backed, result)
                pending &= ~usable
            else:
                accumulated += np.where(seen, gather(lower_table.logbackoff, context), 0.0)
                if self.unseen_context_logbackoff:
                    unseen = pending & (context < 0) & (depth >= n - 1)
                    accumulated += np.where(unseen, self.unseen_context_logbackoff, 0.0)
        # Order 1 has an entry for every word of the vocabulary.
        result = np.where(pending, accumulated + self.orders[0].logprob[tokens[1:]], result)
        return result[depth > 0]

    def next_logprobs(self, history: np.ndarray) -> np.ndarray:
        """log P(. | history) over the whole vocabulary; history starts with <s>."""
        history = np.asarray(history, dtype=np.int64)
        history = history[max(0, len(history) - (self.order - 1)) :] if self.order > 1 else history[:0]
        dist = self.orders[0].logprob.copy()
        if self.lower == "uniform":
            return self._uniform_backed(history, dist)
        for n in range(2, min(self.order, len(history) + 1) + 1):
            context = self.context_id(history[-(n - 1) :])
            if context < 0:
                dist += self.unseen_context_logbackoff
                continue
            dist += self.orders[n - 2].logbackoff[context]
            words, logprob = self.continuations(n, context)
            dist[words] = logprob
        return dist

    def _uniform_backed(self, history: np.ndarray, dist: np.ndarray) -> np.ndarray:
        for n in range(min(self.order, len(history) + 1), 1, -1):
            context = self.context_id(history[-(n - 1) :])
            if context >= 0 and self.orders[n - 2].is_context[context]:
                backed = self.orders[n - 2].logbackoff[context] + self.log_uniform
                dist = np.where(self.support, backed, -np.inf)
                words, logprob = self.continuations(n, context)
                dist[words] = logprob
                return dist
        return dist

    def context_id(self, gram: np.ndarray) -> int:
        """Id of a token sequence in the table of its own order, or -1 if it was never seen."""
        current = int(gram[0])
        for n in range(2, len(gram) + 1):
            current = int(self.lookup(n, np.array([current]), np.array([gram[n - 1]]))[0])
            if current < 0:
                return -1
        return current

    def continuations(self, n: int, context: int) -> tuple[np.ndarray, np.ndarray]:
        """Words seen after context (an id of order n-1) and their log P at order n."""
        table = self.orders[n - 1]
        lo, hi = np.searchsorted(table.keys, [context * self.vocab_size, (context + 1) * self.vocab_size])
        return table.keys[lo:hi] % self.vocab_size, table.logprob[lo:hi]

    def gram_tokens(self) -> list[np.ndarray]:
        """For each order n, the (G, n) array of the token ids of its n-grams, in table order."""
        grams = [self.orders[0].keys[:, None]]
        for table in self.orders[1:]:
            context, word = np.divmod(table.keys, self.vocab_size)
            grams.append(np.hstack([grams[-1][context], word[:, None]]))
        return grams
