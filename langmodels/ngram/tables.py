"""N-gram probability tables in back-off form, and scoring with them.

This is the ARPA view of a model: every seen n-gram carries its final probability P(w | h)
(already interpolated), every n-gram that serves as a context carries a back-off weight gamma,
and for an unseen n-gram

    log P(w | h) = log gamma(h) + log P(w | h')      (h seen as an n-gram; else gamma = 1)

which for an interpolated model is exactly the interpolation formula, because alpha(w | h) = 0
for an unseen continuation. For the estimators whose lower distribution is the uniform one
(mle, uniform, laplace, lidstone) an unseen continuation of a seen context gets gamma(h) / V
instead, and a context never seen falls back to its longest seen suffix.

Lookups are `np.searchsorted` over the sorted int64 keys ``context_id * V + word`` of each
order, one call per order for a whole batch of positions: no per-token Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counting import NGramCounts
from .smoothing import Smoothing


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
        empty_logbackoff: float = 0.0,
    ):
        self.orders = orders
        self.vocab_size = vocab_size
        self.support = support  # (V,) bool: ids that can be predicted
        self.log_uniform = -np.log(max(int(support.sum()), 1))
        self.bos_id = bos_id
        self.lower = lower
        self.unseen_context_logbackoff = unseen_context_logbackoff
        self.empty_logbackoff = empty_logbackoff

    @property
    def order(self) -> int:
        return len(self.orders)

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
        with np.errstate(divide="ignore"):
            empty = float(np.log(gammas[0][0]))
        return cls(
            orders,
            counts.vocab_size,
            support,
            bos_id=counts.bos_id,
            lower=smoothing.lower,
            unseen_context_logbackoff=unseen,
            empty_logbackoff=empty,
        )

    # ---- lookups -------------------------------------------------------------------------

    def lookup(self, n: int, context_ids: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids in order n of the n-grams (context, word), -1 where absent or context is -1."""
        if n == 1:
            return np.asarray(words, dtype=np.int64)
        result = np.full(len(context_ids), -1, dtype=np.int64)
        keys = self.orders[n - 1].keys
        asked = np.flatnonzero(context_ids >= 0)  # an unseen context has no continuation to find
        if not len(keys) or not asked.size:
            return result
        query = context_ids[asked] * self.vocab_size + words[asked]
        # Binary search is about three times faster on sorted queries (each starts where the
        # previous one ended and stays in cache), which pays for the argsort.
        ascending = np.argsort(query)
        index = np.empty(query.size, dtype=np.int64)
        index[ascending] = np.searchsorted(keys, query[ascending])
        index = np.minimum(index, len(keys) - 1)
        result[asked] = np.where(keys[index] == query, index, -1)
        return result

    def gram_ids(self, tokens: np.ndarray, position: np.ndarray) -> list[np.ndarray]:
        """ids[n - 1][i] = id of the n-gram ending at position i (-1 if unseen or crossing a line)."""
        ids = [tokens]
        for n in range(2, self.order + 1):
            previous = np.full(tokens.size, -1, dtype=np.int64)
            previous[1:] = ids[-1][:-1]
            previous[position < n - 1] = -1
            ids.append(self.lookup(n, previous, tokens))
        return ids

    # ---- scoring -------------------------------------------------------------------------

    def score_positions(self, tokens: np.ndarray, position: np.ndarray) -> np.ndarray:
        """log P(tokens[i] | its line up to i) for every position i with position[i] > 0."""
        ids = self.gram_ids(tokens, position)
        targets = np.flatnonzero(position > 0)
        result = np.full(targets.size, np.nan)
        accumulated = np.zeros(targets.size)
        pending = np.ones(targets.size, dtype=bool)
        for n in range(self.order, 0, -1):
            table = self.orders[n - 1]
            fits = position[targets] >= n - 1
            if n == 1:
                context = np.zeros(targets.size, dtype=np.int64)  # the empty context
                context_seen = np.ones(targets.size, dtype=bool)
            else:
                context = ids[n - 2][targets - 1]
                context_seen = fits & (context >= 0)
            gram = ids[n - 1][targets]
            hit = pending & context_seen & (gram >= 0) & fits
            result[hit] = accumulated[hit] + table.logprob[gram[hit]]
            pending &= ~hit
            if n == 1:
                break
            lower_table = self.orders[n - 2]
            seen = pending & context_seen
            if self.lower == "uniform":
                # A context with continuations gives unseen words gamma(h) / V; one without falls through.
                usable = seen & lower_table.is_context[np.maximum(context, 0)]
                result[usable] = (
                    accumulated[usable] + lower_table.logbackoff[context[usable]] + self.log_uniform
                )
                pending &= ~usable
            else:
                accumulated[seen] += lower_table.logbackoff[context[seen]]
                accumulated[pending & fits & ~context_seen] += self.unseen_context_logbackoff
        # Words outside the unigram table (none after fitting; possible for ARPA vocabularies).
        result[pending] = accumulated[pending] + self.empty_logbackoff + self.log_uniform
        return result

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
