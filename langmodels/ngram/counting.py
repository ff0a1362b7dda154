"""Counting n-grams of every order with array operations, the whole corpus in memory.

Fitting goes through estimate.py, which counts the same n-grams block by block within a memory
limit; this module keeps the padded layout that scoring uses (`NGramCounts.pad`) and the
in-memory counting that the external pipeline is tested against (tests/test_ngram_external.py).

Each line is padded as ``<s> w1 ... wk </s>``; an n-gram never crosses a line. An n-gram of
order n is stored as the pair (context, word), where the context is the id of its first n-1
tokens in the table of order n-1, so one int64 key ``context * V + word`` identifies it. Sorting
the keys therefore keeps every context's continuations contiguous, and the table of order n is
built from the one of order n-1 by one ``np.unique`` over the corpus. Order 1 is dense: its id
is the vocabulary id. Order 0 is the single empty context (id 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class OrderCounts:
    """All n-grams of one order seen in training, sorted by (context, word)."""

    context: np.ndarray  # (G,) id of the first n-1 tokens in the table of order n-1
    word: np.ndarray  # (G,) vocabulary id of the last token
    suffix: np.ndarray  # (G,) id of the last n-1 tokens in the table of order n-1
    count: np.ndarray  # (G,) raw occurrence count (float64)
    starts_with_bos: np.ndarray  # (G,) bool: the n-gram begins with <s>
    n_contexts: int  # size of the table of order n-1 (1 for the empty context)

    def __len__(self) -> int:
        return len(self.word)

    def per_context(self, values: np.ndarray) -> np.ndarray:
        """Sum `values` over the continuations of each context: shape (n_contexts,)."""
        return np.bincount(self.context, weights=values, minlength=self.n_contexts)


class NGramCounts:
    """Raw counts of orders 1..N, and the Kneser-Ney continuation counts derived from them."""

    def __init__(self, orders: list[OrderCounts], vocab_size: int, bos_id: int):
        self.orders = orders  # orders[n - 1] holds order n
        self.vocab_size = vocab_size
        self.bos_id = bos_id

    @property
    def order(self) -> int:
        return len(self.orders)

    def __getitem__(self, n: int) -> OrderCounts:
        return self.orders[n - 1]

    @staticmethod
    def pad(flat: np.ndarray, lengths: np.ndarray, bos_id: int, eos_id: int | None):
        """Lay lines out as one array ``<s> w.. </s> <s> w.. </s>``.

        Returns (tokens, position) where position[i] is the offset of token i from its line's
        <s>, so an n-gram ending at i lies inside one line exactly when position[i] >= n - 1.
        With eos_id None no </s> is appended (a continuous stream has no end of line).
        """
        lengths = np.asarray(lengths, dtype=np.int64)
        padded = lengths + (2 if eos_id is not None else 1)
        starts = np.cumsum(padded) - padded
        tokens = np.empty(int(padded.sum()), dtype=np.int64)
        body = np.ones(tokens.size, dtype=bool)
        tokens[starts] = bos_id
        body[starts] = False
        if eos_id is not None:
            ends = starts + padded - 1
            tokens[ends] = eos_id
            body[ends] = False
        tokens[body] = flat
        position = np.arange(tokens.size, dtype=np.int64) - np.repeat(starts, padded)
        return tokens, position

    @classmethod
    def from_lines(
        cls, flat: np.ndarray, lengths: np.ndarray, order: int, vocab_size: int, bos_id: int, eos_id: int | None
    ) -> NGramCounts:
        tokens, position = cls.pad(flat, lengths, bos_id, eos_id)
        predicted = tokens[position > 0]  # <s> is context only, never counted as an event
        unigrams = OrderCounts(
            context=np.zeros(vocab_size, dtype=np.int64),
            word=np.arange(vocab_size, dtype=np.int64),
            suffix=np.zeros(vocab_size, dtype=np.int64),
            count=np.bincount(predicted, minlength=vocab_size).astype(np.float64),
            starts_with_bos=np.arange(vocab_size) == bos_id,
            n_contexts=1,
        )
        orders = [unigrams]
        gram_ids = tokens  # id of the (n-1)-gram ending at each position (order 1: the token)
        for n in range(2, order + 1):
            ends = np.flatnonzero(position >= n - 1)
            keys = gram_ids[ends - 1] * vocab_size + tokens[ends]
            unique, inverse, count = np.unique(keys, return_inverse=True, return_counts=True)
            context = unique // vocab_size
            suffix = np.empty(unique.size, dtype=np.int64)
            suffix[inverse] = gram_ids[ends]  # every occurrence names the same suffix
            lower = orders[-1]
            orders.append(
                OrderCounts(
                    context=context,
                    word=unique % vocab_size,
                    suffix=suffix,
                    count=count.astype(np.float64),
                    starts_with_bos=lower.starts_with_bos[context],
                    n_contexts=len(lower),
                )
            )
            next_ids = np.full(tokens.size, -1, dtype=np.int64)
            next_ids[ends] = inverse
            gram_ids = next_ids
        return cls(orders, vocab_size, bos_id)

    def continuation_counts(self, n: int) -> np.ndarray:
        """N1+(. w_1^n): distinct tokens seen before each n-gram of order n < N (Kneser & Ney 1995)."""
        return np.bincount(self[n + 1].suffix, minlength=len(self[n])).astype(np.float64)

    def adjusted_counts(self, n: int) -> np.ndarray:
        """The counts modified Kneser-Ney discounts, as SRILM and KenLM's lmplz define them.

        The highest order keeps raw counts; a lower-order n-gram gets its continuation count,
        except one that begins with <s>: nothing can precede <s>, so it keeps its raw count.
        """
        table = self[n]
        if n == self.order:
            return table.count
        return np.where(table.starts_with_bos, table.count, self.continuation_counts(n))


def count_of_counts(counts: np.ndarray, largest: int = 4) -> np.ndarray:
    """n_k = number of n-grams with count exactly k, for k = 0..largest (Chen & Goodman's n_k)."""
    integral = counts.astype(np.int64)
    return np.bincount(integral[integral <= largest], minlength=largest + 1)[: largest + 1]
