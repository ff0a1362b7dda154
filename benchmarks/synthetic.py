"""A synthetic corpus of any size: sentences sampled from a trigram model of Brown train.

For the benchmarks that need more text than the shipped corpora have (15M, 100M, 1B words), this
writes a corpus with Brown's vocabulary and roughly its local statistics. The model is an
interpolated maximum-likelihood trigram (Jelinek and Mercer 1980, "deleted interpolation", here
with fixed weights):

    P(w | u, v) = l3 * c(u, v, w) / c(u, v) + l2 * c(v, w) / c(v) + l1 * c(w) / N,

(l3, l2, l1) = (0.75, 0.2, 0.05), counted on Brown train with each line read as
<s> <s> w1 .. wk </s>; where (u, v) was never a context the trigram term is left out and the
other two renormalised. Sampling a word from one term is picking one of the term's training
occurrences uniformly: a position of the training text whose context matches (so no table of
probabilities is built). A sentence ends at </s>, or after MAX_WORDS words; it never ends empty
(at a sentence's start the trigram term, which never gives </s> there, is used).

SLOTS sentences are sampled side by side with numpy, each slot writing one sentence after
another; every CHUNK_STEPS tokens, the sentences that ended are handed out in slot order (one
per line, words separated by one space; those of the first BURN_IN_CHUNKS chunks are left out),
and the text stops at the first line end at or after the requested number of words. Everything
follows from the seed: the same seed gives the same bytes, and the corpus of N words is the
beginning of the corpus of any M > N words. Lines average 22.6 words (Brown train: 22.5).

    python benchmarks/synthetic.py --words 100M --out PATH [--seed 0]   (PATH ending .gz: gzip)

From Python: ``write_corpus(n_words, path, seed=0)`` (returns its figures), or
``text_blocks(n_words, seed=0)`` for the text as UTF-8 byte blocks of whole lines, without a file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import time
from itertools import count
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout, installed or not

from langmodels import corpora  # noqa: E402
from langmodels.token_ids import token_ids  # noqa: E402
from langmodels.tokenizers import Vocabulary, WordTokenizer  # noqa: E402

WEIGHTS = (0.75, 0.2, 0.05)  # l3, l2, l1
MAX_WORDS = 200  # a sentence this long is ended
SLOTS = 1 << 15  # sentences sampled side by side
CHUNK_STEPS = 128  # tokens each slot samples before the finished sentences are handed out
# Sentences ending in the first chunks are left out: all slots start a sentence at step 0, so
# early chunks would hold too few long sentences (a slot's sentences end at random steps only
# after a few sentences; 256 steps is over ten mean Brown sentences).
BURN_IN_CHUNKS = 2
BLOCK_TOKENS = 1 << 20  # tokens per block of text handed out (about 5 MB)


class TrigramSampler:
    """The interpolated trigram of one tokenized text, as sorted occurrence tables."""

    def __init__(self, flat: np.ndarray, lengths: np.ndarray, vocab: Vocabulary):
        self.vocab = vocab
        self.words = np.array(vocab.tokens, dtype=object)
        V = self.V = len(vocab)
        bos, eos = vocab.bos_id, vocab.eos_id
        # Every prediction of the training text: target and its two tokens of context.
        lengths = np.asarray(lengths, dtype=np.int64)
        n = len(lengths)
        stream = np.insert(np.asarray(flat, dtype=np.int64), np.cumsum(lengths), eos)  # w1 .. wk </s>, per line
        first = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])  # each line's first target
        rank = np.arange(len(stream)) - np.repeat(first, lengths + 1)  # target's position in its line
        v = np.where(rank >= 1, np.roll(stream, 1), bos)
        u = np.where(rank >= 2, np.roll(stream, 2), bos)
        self.n_lines = n
        # Trigram: occurrences sorted by context key u * V + v.
        key3 = u * V + v
        order = np.argsort(key3, kind="stable")
        self.next3 = stream[order].astype(np.int32)
        keys, starts, counts = np.unique(key3[order], return_index=True, return_counts=True)
        self.ctx3, self.start3, self.count3 = keys, starts, counts
        self.start_row = self.row_of(np.array([bos]), np.array([bos]))[0]
        # Bigram: occurrences sorted by v; a context row per token id.
        order = np.argsort(v, kind="stable")
        self.next2 = stream[order].astype(np.int32)
        self.count2 = np.bincount(v, minlength=V)
        self.start2 = np.concatenate([[0], np.cumsum(self.count2)[:-1]])
        # The trigram context after each occurrence, (v, w): found once here, so that sampling
        # from the trigram or bigram term needs no search (a training bigram (v, w) with w not
        # </s> is always followed by a token, so it is always a trigram context).
        self.after3 = self.row_of(v[np.argsort(key3, kind="stable")], self.next3)
        self.after2 = self.row_of(np.sort(v, kind="stable"), self.next2)
        # Unigram: every target.
        self.next1 = stream.astype(np.int32)

    def row_of(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The trigram table's row of each context (v, w); the start row after </s>; -1 where
        (v, w) was never a context."""
        key = np.asarray(v, dtype=np.int64) * self.V + np.asarray(w, dtype=np.int64)
        row = np.minimum(np.searchsorted(self.ctx3, key), len(self.ctx3) - 1)
        row = np.where(self.ctx3[row] == key, row, -1)
        if hasattr(self, "start_row"):
            row = np.where(np.asarray(w) == self.vocab.eos_id, self.start_row, row)
        return row

    @classmethod
    def of_brown(cls) -> TrigramSampler:
        train = corpora.load("brown").train
        tokenizer = WordTokenizer().fit(train)
        ids = token_ids(train, tokenizer)
        return cls(ids.ids, ids.lengths, tokenizer.vocab)

    def sentences(self, rng: np.random.Generator, slots: int = SLOTS, steps: int = CHUNK_STEPS):
        """Endless flat int32 arrays of whole sentences, each ended by </s>: SLOTS sentences are
        sampled side by side, `steps` tokens at a time (a chunk); each array is the sentences that
        ended during one chunk, in slot order (a sentence begun in an earlier chunk waits, as
        `pending`, until it ends)."""
        bos, eos = self.vocab.bos_id, self.vocab.eos_id
        l3, l2, _ = WEIGHTS
        width = MAX_WORDS + 1  # the longest unfinished sentence a slot can carry over
        v = np.full(slots, bos, dtype=np.int64)  # the last token of the context
        row = np.full(slots, self.start_row, dtype=np.int64)  # the trigram row of the context, or -1
        run = np.zeros(slots, dtype=np.int64)  # words of the current sentence so far
        pending = np.zeros((slots, width), dtype=np.int32)
        n_pending = np.zeros(slots, dtype=np.int64)
        column = np.arange(width + steps)
        for n_chunk in count():
            chunk = np.empty((slots, steps), dtype=np.int32)
            for t in range(steps):
                choice, pick3, pick2, pick1 = rng.random((4, slots), dtype=np.float32)
                seen = row >= 0
                at = np.maximum(row, 0)
                j3 = self.start3[at] + (pick3 * self.count3[at]).astype(np.int64)
                j2 = self.start2[v] + (pick2 * self.count2[v]).astype(np.int64)
                j1 = (pick1 * len(self.next1)).astype(np.int64)
                # Where the trigram context is unseen its weight goes to the other two, in proportion.
                third = seen & (choice < l3)
                third |= (run == 0) & (self.next1[j1] == eos)  # never an empty sentence
                second = ~third & (np.where(seen, choice - l3, choice * (1 - l3)) < l2)
                first = ~third & ~second
                w = np.where(third, self.next3[j3], np.where(second, self.next2[j2], self.next1[j1]))
                after = np.where(third, self.after3[j3], self.after2[j2])
                if first.any():
                    after[first] = self.row_of(v[first], w[first])
                long = run >= MAX_WORDS
                w[long], after[long] = eos, self.start_row
                chunk[:, t] = w
                ended = w == eos
                run = np.where(ended, 0, run + 1)
                v = np.where(ended, bos, w)
                row = after
            # Each slot's pending tokens then its chunk; out go the tokens up to its last </s>.
            both = np.concatenate([pending, chunk], axis=1)
            ended = chunk == eos
            last = np.where(ended.any(axis=1), width + steps - 1 - np.argmax(ended[:, ::-1], axis=1), -1)
            real = (column < n_pending[:, None]) | (column >= width)
            out = real & (column <= last[:, None])
            if n_chunk >= BURN_IN_CHUNKS:
                yield both[out]
            kept = real & ~out  # the slot's unfinished sentence, moved to the left of `pending`
            n_pending = kept.sum(axis=1)
            rank = np.arange(int(n_pending.sum())) - np.repeat(np.cumsum(n_pending) - n_pending, n_pending)
            pending[:] = 0
            pending[np.repeat(np.arange(slots), n_pending), rank] = both[kept]

    def text_of(self, tokens: np.ndarray) -> bytes:
        """UTF-8 text of whole sentences (a flat id array ending with </s>): words joined by one
        space, </s> as a newline; built by one gather from a byte pool, not word by word."""
        eos = self.vocab.eos_id
        pool, start, size = self._pool()
        tokens = np.asarray(tokens, dtype=np.int64)
        after_word = np.concatenate([[False], tokens[:-1] != eos])  # a space before this word
        is_word = tokens != eos
        skip = (is_word & ~after_word).astype(np.int64)  # drop the pooled leading space
        src = start[tokens] + skip
        lens = size[tokens] - skip
        ends = np.cumsum(lens)
        index = np.repeat(src - (ends - lens), lens) + np.arange(int(ends[-1]) if len(ends) else 0)
        return pool[index].tobytes()

    def _pool(self):
        """Each word as ' ' + its UTF-8 bytes, </s> as '\\n', in one byte array."""
        if not hasattr(self, "_pooled"):
            pieces = [b" " + token.encode("utf-8") for token in self.vocab.tokens]
            pieces[self.vocab.eos_id] = b"\n"
            size = np.array([len(p) for p in pieces], dtype=np.int64)
            start = np.concatenate([[0], np.cumsum(size)[:-1]])
            self._pooled = (np.frombuffer(b"".join(pieces), dtype=np.uint8), start, size)
        return self._pooled


def text_blocks(n_words: int, seed: int = 0, sampler: TrigramSampler | None = None):
    """The synthetic corpus of at least ``n_words`` words (ending at the first line end from
    there) as UTF-8 byte blocks of whole lines, deterministic by ``seed``."""
    for block, _, _ in counted_blocks(n_words, seed, sampler):
        yield block


def counted_blocks(n_words: int, seed: int = 0, sampler: TrigramSampler | None = None):
    """(block, words, lines) for each block of :func:`text_blocks`."""
    sampler = sampler or TrigramSampler.of_brown()
    rng = np.random.default_rng(seed)
    eos = sampler.vocab.eos_id
    left = n_words
    for flat in sampler.sentences(rng):
        if left <= 0:
            break
        is_word = flat != eos
        words = np.cumsum(is_word, dtype=np.int32)
        if words[-1] >= left:  # stop at the line end where the count is reached
            end = int(np.flatnonzero((words >= left) & ~is_word)[0]) + 1
            flat, is_word, words = flat[:end], is_word[:end], words[:end]
        left -= int(words[-1])
        # Blocks of about BLOCK_TOKENS tokens, each ending at a line end.
        line_ends = np.flatnonzero(~is_word) + 1
        wanted = np.arange(BLOCK_TOKENS, len(flat), BLOCK_TOKENS)
        cuts = np.unique(np.append(line_ends[np.minimum(np.searchsorted(line_ends, wanted), len(line_ends) - 1)],
                                   len(flat)))
        begin = 0
        for cut in cuts.tolist():
            n_lines = int(np.count_nonzero(~is_word[begin:cut]))
            yield sampler.text_of(flat[begin:cut]), cut - begin - n_lines, n_lines
            begin = cut


def parse_count(text: str) -> int:
    """'100M' -> 100_000_000 (K, M, G/B suffixes; decimal)."""
    text = text.strip().upper().replace("_", "")
    scale = {"K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGB" else text
    return int(float(number) * scale)


def write_corpus(n_words: int, path, *, seed: int = 0, progress: bool | None = None) -> dict:
    """Write the synthetic corpus to ``path`` (gzip when it ends with .gz), atomically; returns
    its words, lines, bytes (uncompressed), sha256 of the text and the seconds it took."""
    from tqdm.auto import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sampler = TrigramSampler.of_brown()
    model_seconds = time.perf_counter() - start
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest, n_bytes, n_lines, n_written = hashlib.sha256(), 0, 0, 0
    try:
        bar = tqdm(total=n_words, unit="word", unit_scale=True, desc=path.name,
                   disable=True if progress is False else None)
        with _output(temporary, gzipped=path.suffix == ".gz") as out, bar:
            for block, words, lines in counted_blocks(n_words, seed, sampler):
                out.write(block)
                digest.update(block)
                n_bytes += len(block)
                n_lines += lines
                n_written += words
                bar.update(words)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    return {"path": str(path), "words": n_written, "lines": n_lines, "bytes": n_bytes, "sha256": digest.hexdigest(),
            "seed": seed, "seconds": seconds, "model_seconds": model_seconds}


def _output(path: Path, *, gzipped: bool):
    """The file to write: gzip level 1 (fast) for a .gz corpus, else plain."""
    return gzip.open(path, "wb", compresslevel=1) if gzipped else open(path, "wb")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", required=True, help="how many words, e.g. 15M, 100M, 1B")
    parser.add_argument("--out", required=True, help="the file to write (.gz: gzip-compressed)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    figures = write_corpus(parse_count(args.words), args.out, seed=args.seed)
    rate = figures["words"] / figures["seconds"] / 1e6
    print(f"{args.out}: {figures['words']:,} words, {figures['lines']:,} lines, {figures['bytes']:,} bytes, "
          f"sha256 {figures['sha256'][:16]}..., {figures['seconds']:.1f} s ({rate:.1f}M words/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
