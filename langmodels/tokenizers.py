"""Vocabulary and tokenizers: words, characters and byte-level BPE.

Every tokenizer maps text to ids of its own tokens with no boundary markers (docs/design.md 2; the
models add start and end of line), maps ids back to text, and saves to JSON, never pickle.
The five special tokens have the same ids in every vocabulary:
``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3, ``<mask>`` 4.

A corpus may be larger than memory, so a text is read in blocks (:func:`text_blocks`: chunks
that end after a newline, a file-backed Split's own): ``fit`` counts over the blocks one by one,
and ``encode_block`` turns one block into the ids and line lengths of its lines with array
operations (a block's worth of words at once), which langmodels.token_ids writes to its cache.
"""

from __future__ import annotations

import codecs
import heapq
import json
import re
from collections import Counter
from itertools import chain, count, pairwise, repeat
from operator import itemgetter
from pathlib import Path

import numpy as np

from langmodels.checkpoint import write_atomic
from langmodels.corpora import split_blocks
from langmodels.errors import CheckpointError, ConfigError

FORMAT = "langmodels.tokenizer"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Vocabulary


class Vocabulary:
    """Token strings <-> ids: the five specials first, then tokens by descending count."""

    UNK, BOS, EOS, PAD, MASK = "<unk>", "<s>", "</s>", "<pad>", "<mask>"
    SPECIALS = (UNK, BOS, EOS, PAD, MASK)
    unk_id, bos_id, eos_id, pad_id, mask_id = range(5)

    def __init__(self, tokens=()):
        """``tokens``: the regular tokens in id order (a special string stays the special)."""
        specials = set(self.SPECIALS)
        self.tokens = [*self.SPECIALS, *(token for token in tokens if token not in specials)]
        self._index = {token: i for i, token in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            twice = next(t for t, n in Counter(self.tokens).items() if n > 1)
            raise ValueError(f"token {twice!r} is listed twice")

    @classmethod
    def from_counts(cls, counts, *, min_count=1, max_size=None):
        """Tokens seen at least ``min_count`` times, at most ``max_size`` entries in all
        (specials included), most frequent first, ties broken by the token string."""
        kept = [(token, count) for token, count in counts.items()
                if count >= min_count and token not in cls.SPECIALS]
        if not kept and min_count > 1 and counts:  # the text would read as <unk> alone
            most = max(counts.values())
            raise ConfigError(f"min_count={min_count} maps every token of the training text to <unk> (the most "
                              f"frequent occurs {most:,} times): use a min_count of at most {most:,}")
        # By token, then stably by descending count: ties stay in token order.
        kept.sort(key=itemgetter(0))
        kept.sort(key=itemgetter(1), reverse=True)
        if max_size is not None:
            kept = kept[: max(0, max_size - len(cls.SPECIALS))]
        return cls(token for token, _ in kept)

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, token):
        return self._index.get(token, self.unk_id)

    def __contains__(self, token):
        return token in self._index

    def __iter__(self):
        return iter(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self):
        return f"Vocabulary({len(self)} tokens)"

    def token(self, token_id):
        """The token string of an id."""
        token_id = int(token_id)
        if not 0 <= token_id < len(self.tokens):
            raise IndexError(f"token id {token_id} is outside a vocabulary of {len(self)}")
        return self.tokens[token_id]

    def ids(self, tokens):
        """Ids of a sequence of tokens (unknown -> ``unk_id``), as an int64 array."""
        tokens = tokens if isinstance(tokens, list) else list(tokens)
        looked_up = map(self._index.get, tokens, repeat(self.unk_id))
        return np.fromiter(looked_up, dtype=np.int64, count=len(tokens))

    def to_dict(self):
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`; malformed data raises CheckpointError."""
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise CheckpointError("vocabulary is malformed: 'tokens' must be a list of strings")
        if tuple(tokens[: len(cls.SPECIALS)]) != cls.SPECIALS:
            raise CheckpointError(
                f"vocabulary is malformed: it must start with {', '.join(cls.SPECIALS)}"
            )
        rest = tokens[len(cls.SPECIALS):]
        if len(set(tokens)) != len(tokens):
            raise CheckpointError("vocabulary is malformed: a token is listed twice")
        return cls(rest)


# ----------------------------------------------------------------------------------------------
# The common interface


BLOCK_CHARS = 1 << 22  # characters per block when streaming a text (4 Mi: a few MB of words)


def text_blocks(source, block_chars=BLOCK_CHARS):
    """The text of ``source`` as an iterator of str blocks whose concatenation is exactly that
    text, each ending just after a newline (but the last, when the text has no final newline).

    ``source``: a str (the text itself), or a Split or other list of lines, whose blocks are
    :func:`langmodels.corpora.split_blocks`' (a file-backed Split streams its file).
    """
    if isinstance(source, str):
        return _cut_text(source, block_chars)
    return split_blocks(source, block_chars)


def _cut_text(text, block_chars):
    """Blocks of one str, each cut just after a newline."""
    begin = 0
    while begin < len(text):
        cut = text.find("\n", begin + block_chars - 1)
        end = len(text) if cut < 0 else cut + 1
        yield text[begin:end]
        begin = end


def block_lines(block):
    """The lines of a block of text (see :func:`text_blocks`): a final newline ends the last line,
    it does not start an empty one."""
    if not block:
        return []
    return block.removesuffix("\n").split("\n")


def _check_int(name, value, minimum, *, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


class Tokenizer:
    """Text <-> ids. Subclasses set ``level`` and ``kind`` and implement the token mapping."""

    level = None  # "word", "char" or "subword"
    kind = None  # name in saved files
    tokens_are_words = False  # True when a line's tokens are exactly its whitespace-separated words

    #: ids that decode() leaves out: they mark positions, they are not text
    SILENT_IDS = frozenset({Vocabulary.bos_id, Vocabulary.eos_id, Vocabulary.pad_id})

    vocab = None

    def get_params(self):
        """Hyper-parameters, as given to ``__init__``."""
        raise NotImplementedError

    def check_params(self):
        """Raise ConfigError for a hyper-parameter the tokenizer cannot use."""

    def fit(self, lines):
        """Learn the vocabulary from lines (a list or Split of str) or one str; returns self.
        The text is read in blocks (:func:`text_blocks`), so a Split that streams its file is
        never held whole."""
        return self.fit_blocks(text_blocks(lines))

    def fit_blocks(self, blocks):
        """Learn the vocabulary from a text given as blocks (str chunks ending after a newline,
        as :func:`text_blocks` gives them): one pass of counting; returns self."""
        raise NotImplementedError

    def encode_block(self, block, dtype=np.int64):
        """(ids, lengths) of the lines of one block (see :func:`text_blocks`): exactly
        ``encode_lines(block_lines(block))``, computed with array operations where the
        tokenizer can."""
        flat, lengths = self.encode_lines(block_lines(block))
        return flat.astype(dtype, copy=False), lengths

    def tokenize(self, text):
        """The token strings of a text."""
        raise NotImplementedError

    def encode(self, text):
        """Ids of the text's own tokens (no boundary markers)."""
        return self._fitted().ids(self.tokenize(text)).tolist()

    def decode(self, ids):
        """Text of a sequence of ids; ``<s>``, ``</s>`` and ``<pad>`` are left out."""
        raise NotImplementedError

    def decode_sample(self, ids):
        """Text of generated ids, as `decode`, but a last character cut short (the first bytes of
        a character spread over byte-level pieces) is left out rather than shown as U+FFFD: the
        last pieces are dropped while the text ends in U+FFFD, at most three (a UTF-8 character
        has at most four bytes). Tokenizers that see the bytes (BPETokenizer) cut exactly."""
        ids = list(ids)
        text = self.decode(ids)
        for end in range(len(ids) - 1, max(len(ids) - 4, -1), -1):
            if not text.endswith("\ufffd"):
                break
            text = self.decode(ids[:end])
        return text

    def token_text(self, token_id):
        """The text one token stands for, for showing it (a BPE piece 'Ġthe' is ' the'); a
        special token shows its name."""
        text = self.decode([int(token_id)])
        return text or self._fitted().token(token_id)  # markers decode to nothing

    def fit_encode_lines(self, lines):
        """fit(lines) then encode_lines(lines); tokenizers that can do both in one pass do."""
        return self.fit(lines).encode_lines(lines)

    def encode_lines(self, lines):
        """All lines' ids concatenated (int64) and the number of ids of each line (int64)."""
        per_line = [self.encode(line) for line in lines]
        lengths = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
        flat = np.fromiter(chain.from_iterable(per_line), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def _visible_tokens(self, ids):
        vocab = self._fitted()
        return [vocab.token(i) for i in ids if int(i) not in self.SILENT_IDS]

    def _fitted(self):
        if self.vocab is None:
            raise ConfigError(f"{type(self).__name__} is not fitted; call fit(lines) first")
        return self.vocab

    def to_dict(self):
        """JSON-safe description: kind, hyper-parameters and the learned state."""
        self._fitted()
        return {"format": FORMAT, "version": FORMAT_VERSION, "type": self.kind,
                "params": self.get_params(), **self._state()}

    def _state(self):
        return {"vocab": self.vocab.to_dict()}

    def _load_state(self, data):
        self.vocab = Vocabulary.from_dict(data.get("vocab"))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        size = "unfitted" if self.vocab is None else f"{len(self.vocab)} tokens"
        return f"{type(self).__name__}({params}) <{size}>"


# ----------------------------------------------------------------------------------------------
# Words

LINE_MARK = "\0"  # stands for a newline in a block being split into words (not whitespace)


def _marked_ids(block, index, dtype):
    """(ids, line lengths) of a block whose newlines are first turned into the marker word, in
    one str.split; ``index`` maps every word to its id and the marker to -1 (in one C-level
    lookup each: a dict subclass whose __missing__ answers for the words it lacks)."""
    words = block.replace("\n", f" {LINE_MARK} ").split()
    ids = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
    marks = np.flatnonzero(ids < 0)  # one per newline: the end of a line
    ends = marks - np.arange(marks.size)  # where each line ends among the words alone
    if block and not block.endswith("\n"):  # a last line without its newline
        ends = np.append(ends, len(words) - marks.size)
    lengths = np.diff(ends, prepend=0)
    return ids[ids >= 0].astype(dtype, copy=False), lengths


class FirstSeen(dict):
    """word -> its rank of first appearance (0, 1, ...); the line marker -> -1."""

    def __init__(self):
        super().__init__({LINE_MARK: -1})

    def __missing__(self, word):
        rank = self[word] = len(self) - 1
        return rank

    def words(self):
        """The words in the order of their ranks."""
        return [word for word in self if word != LINE_MARK]


class _UnknownIsUnk(dict):
    """A token -> id dict whose missing tokens are <unk>."""

    __slots__ = ()

    def __missing__(self, token):
        return Vocabulary.unk_id


class WordTokenizer(Tokenizer):
    """Words: whitespace-separated (pre-tokenised corpora such as Brown) or nltk's Treebank-style
    word tokenizer for raw text."""

    level = "word"
    kind = "word"
    MODES = ("whitespace", "nltk")

    def __init__(self, mode="whitespace", min_count=1, max_size=None):
        self.mode = mode
        self.tokens_are_words = mode == "whitespace"
        self.min_count = min_count
        self.max_size = max_size
        self.vocab = None

    def get_params(self):
        return {"mode": self.mode, "min_count": self.min_count, "max_size": self.max_size}

    def check_params(self):
        if self.mode not in self.MODES:
            raise ConfigError(
                f"unknown word tokenizer mode {self.mode!r}; modes: {', '.join(self.MODES)}"
            )
        _check_int("min_count", self.min_count, 1)
        _check_int("max_size", self.max_size, len(Vocabulary.SPECIALS), optional=True)

    def _splitter(self):
        if self.mode == "whitespace":
            return str.split
        # nltk.word_tokenize first splits sentences with the punkt model, which is downloaded
        # data; its word-level tokenizer alone needs none, so it works offline.
        from nltk.tokenize import NLTKWordTokenizer

        return NLTKWordTokenizer().tokenize

    def fit(self, lines):
        if isinstance(lines, str) and self.mode != "whitespace":
            lines = [lines]  # one str is one text to tokenize, as it always was
        return self.fit_blocks(text_blocks(lines))

    def fit_blocks(self, blocks):
        self.check_params()
        counts = Counter()
        if self.mode == "whitespace":
            for block in blocks:  # a line's words are the block's words: newlines are whitespace
                counts.update(block.split())
        else:
            splitter = self._splitter()
            for block in blocks:
                counts.update(chain.from_iterable(map(splitter, block_lines(block))))
        return self.fit_counts(counts)

    def fit_counts(self, counts):
        """The vocabulary of words counted elsewhere (a dict word -> count): fit_blocks' own."""
        self.check_params()
        self.vocab = Vocabulary.from_counts(counts, min_count=self.min_count,
                                            max_size=self.max_size)
        return self

    def first_seen_block(self, block, index):
        """(ids, line lengths) of a block as encode_block's, but each word's id is its rank of
        first appearance in ``index`` (a FirstSeen, growing as new words come): one pass that
        both counts the words (bincount of the ids) and encodes them, renumbered into the
        vocabulary's order once it is known. None where encode_block would not split the
        block whole (nltk mode, or a block holding the line marker)."""
        if self.mode != "whitespace" or LINE_MARK in block:
            return None
        return _marked_ids(block, index, np.int64)

    def tokenize(self, text):
        return self._splitter()(text)

    def fit_encode_lines(self, lines):
        """One pass over the words, all at C level: each word's provisional id is the position of
        its first occurrence (dict.setdefault with a running count), counted with bincount, then
        renumbered into the vocabulary's order (the n-gram models' fit uses this)."""
        self.check_params()
        per_line = list(map(self._splitter(), lines))
        lengths = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
        total = int(lengths.sum())
        first_seen: dict[str, int] = {}
        provisional = np.fromiter(map(first_seen.setdefault, chain.from_iterable(per_line), count()),
                                  dtype=np.int64, count=total)
        counts = np.bincount(provisional, minlength=total)
        firsts = np.fromiter(first_seen.values(), dtype=np.int64, count=len(first_seen))
        self.vocab = Vocabulary.from_counts(dict(zip(first_seen, counts[firsts].tolist())),
                                            min_count=self.min_count, max_size=self.max_size)
        renumber = np.zeros(max(total, 1), dtype=np.int64)
        renumber[firsts] = np.fromiter(map(self.vocab._index.get, first_seen, repeat(self.vocab.unk_id)),
                                       dtype=np.int64, count=len(first_seen))
        return renumber[provisional], lengths

    def encode_lines(self, lines):
        vocab = self._fitted()
        # One C-level split per line and one dict lookup per word: no Python loop body.
        per_line = list(map(self._splitter(), lines))
        lengths = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
        words = chain.from_iterable(per_line)
        looked_up = map(vocab._index.get, words, repeat(vocab.unk_id))
        return np.fromiter(looked_up, dtype=np.int64, count=int(lengths.sum())), lengths

    def encode_block(self, block, dtype=np.int64):
        """One C-level str.split of the whole block, its newlines first turned into a marker
        word (NUL, absent from the block: else the line-by-line path), then one dict lookup per
        word; the markers' positions give the lines' lengths. Twice the speed of a split per line
        (8.6M against 4.3M words/s, Brown train on one core)."""
        if self.mode != "whitespace" or LINE_MARK in block:
            return super().encode_block(block, dtype)
        self._fitted()
        return _marked_ids(block, self._marked_index(), dtype)

    def _marked_index(self):
        """The vocabulary's index with the line marker added as id -1, and <unk> for a missing
        word (built once per vocabulary): one-argument lookups, faster than dict.get's two."""
        marked = getattr(self, "_marked", None)
        if marked is None or marked[0] is not self.vocab:
            index = _UnknownIsUnk(self.vocab._index)
            index[LINE_MARK] = -1
            marked = self._marked = (self.vocab, index)
        return marked[1]

    def decode(self, ids):
        return " ".join(self._visible_tokens(ids))


# ----------------------------------------------------------------------------------------------
# Characters


NEWLINE = ord("\n")


def _code_points(text):
    """The code points of a text (uint32): UTF-32 gives one 4-byte unit per code point, and lone
    surrogates pass through unchanged."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer(Tokenizer):
    """One token per character (Unicode code point); a newline is an ordinary character."""

    level = "char"
    kind = "char"

    def __init__(self, min_count=1):
        self.min_count = min_count
        self.vocab = None

    def get_params(self):
        return {"min_count": self.min_count}

    def check_params(self):
        _check_int("min_count", self.min_count, 1)

    def fit_blocks(self, blocks):
        self.check_params()
        counts = {}  # code point -> count; newlines between lines are characters too
        for block in blocks:
            points, n = np.unique(_code_points(block), return_counts=True)
            for point, c in zip(points.tolist(), n.tolist()):
                counts[point] = counts.get(point, 0) + c
        counts = {chr(point): c for point, c in counts.items()}
        self._set_vocab(Vocabulary.from_counts(counts, min_count=self.min_count))
        return self

    def _set_vocab(self, vocab):
        self.vocab = vocab
        regular = vocab.tokens[len(Vocabulary.SPECIALS):]
        code_points = np.array([ord(c) for c in regular], dtype=np.int64)
        # A table from code point to id, up to the largest code point of the vocabulary (at most
        # 4.4 MB, for U+10FFFF), and one more entry, <unk>, for every code point beyond it.
        table = np.full(int(code_points.max(initial=-1)) + 2, Vocabulary.unk_id, dtype=np.int32)
        table[code_points] = np.arange(len(Vocabulary.SPECIALS), len(vocab), dtype=np.int32)
        self._table = table

    def _ids(self, text, dtype=np.int64):
        return self._lookup(_code_points(text), dtype)

    def _lookup(self, points, dtype=np.int64):
        self._fitted()
        table = self._table
        return table[np.minimum(points, table.size - 1)].astype(dtype, copy=False)

    def tokenize(self, text):
        return list(text)

    def encode(self, text):
        return self._ids(text).tolist()

    def encode_lines(self, lines):
        lines = lines if isinstance(lines, list) else list(lines)
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        return self._ids("".join(lines)), lengths

    def encode_block(self, block, dtype=np.int64):
        """Every character's id by table lookup; the newlines end lines and are left out."""
        points = _code_points(block)
        newline = points == NEWLINE
        ends = np.flatnonzero(newline) - np.arange(np.count_nonzero(newline))
        if block and not block.endswith("\n"):  # a last line without its newline
            ends = np.append(ends, points.size - ends.size)
        return self._lookup(points[~newline], dtype), np.diff(ends, prepend=0)

    def decode(self, ids):
        return "".join(self._visible_tokens(ids))

    def _load_state(self, data):
        vocab = Vocabulary.from_dict(data.get("vocab"))
        if any(len(t) != 1 for t in vocab.tokens[len(Vocabulary.SPECIALS):]):
            raise CheckpointError("character vocabulary is malformed: a token is not one character")
        self._set_vocab(vocab)


# ----------------------------------------------------------------------------------------------
# Byte-level BPE

# Pre-tokens, after GPT-2 (Radford et al. 2019): a word keeps the single space before it, and
# runs of other whitespace stand alone (the last space of a run goes with the next word).
# The three alternatives together match every character, so pieces always rejoin to the text.
PRETOKEN = re.compile(r" ?\S+|\s+(?!\S)|\s+")


def _byte_symbols():
    """One visible character per byte, for showing byte tokens: printable Latin-1 bytes stand
    for themselves; the rest (controls, space, no-break space, soft hyphen) move to U+0100 on,
    in byte order, as in GPT-2, so a space shows as 'Ġ' and a newline as 'Ċ'."""
    visible = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    symbols, moved = [], 0
    for byte in range(256):
        if byte in visible:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(0x100 + moved))
            moved += 1
    return symbols


BYTE_SYMBOLS = _byte_symbols()
FIRST_BYTE_ID = len(Vocabulary.SPECIALS)  # ids 5..260 are the bytes 0..255


def _merge_pair(symbols, left, right, merged):
    """``symbols`` with every non-overlapping (left, right), scanned left to right, replaced."""
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == left and symbols[i + 1] == right:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2's byte-level variant).

    The base alphabet is the 256 bytes, so any UTF-8 text encodes and decodes exactly. Merges
    are learned greedily from pair counts over the table of distinct pre-tokens weighted by
    their frequency; ties go to the smallest (left id, right id).
    """

    level = "subword"
    kind = "bpe"
    CACHE_SIZE = 100_000  # pre-tokens remembered by encode

    def __init__(self, vocab_size=1024, min_frequency=2):
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.vocab = None
        self.merges = []

    def get_params(self):
        return {"vocab_size": self.vocab_size, "min_frequency": self.min_frequency}

    def check_params(self):
        _check_int("vocab_size", self.vocab_size, FIRST_BYTE_ID + 256)
        _check_int("min_frequency", self.min_frequency, 1)

    # -- training

    def fit_blocks(self, blocks):
        self.check_params()
        # Pre-tokens of the whole text, block by block: a block is cut after its last non-space
        # character and the whitespace after it goes with the next block, so that no pre-token
        # (a run of whitespace may span a newline) is split between two blocks.
        counts = Counter()
        carry = ""
        for block in blocks:
            text = carry + block
            cut = len(text.rstrip())
            counts.update(PRETOKEN.findall(text, 0, cut))
            carry = text[cut:]
        counts.update(PRETOKEN.findall(carry))
        words = [tuple(b + FIRST_BYTE_ID for b in piece.encode("utf-8", "surrogatepass"))
                 for piece in counts]
        self._set_merges(self._learn_merges(words, list(counts.values())))
        return self

    def _learn_merges(self, words, freqs):
        """Greedy BPE: repeatedly merge the most frequent adjacent pair (Sennrich et al. 2016,
        Algorithm 1), updating counts only for the words that contain the merged pair."""
        token_bytes = [s.encode() for s in Vocabulary.SPECIALS] + [bytes([b]) for b in range(256)]
        known = {b: i for i, b in enumerate(token_bytes) if i >= FIRST_BYTE_ID}
        specials = {s.encode() for s in Vocabulary.SPECIALS}

        pair_counts = Counter()
        where = {}  # pair -> indices of words that contain (or once contained) it
        for w, (symbols, freq) in enumerate(zip(words, freqs)):
            for pair in pairwise(symbols):
                pair_counts[pair] += freq
                where.setdefault(pair, set()).add(w)
        # Max-heap by count, then smallest pair; stale entries are skipped when popped.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges = []
        while len(token_bytes) < self.vocab_size and heap:
            negative_count, pair = heapq.heappop(heap)
            count = pair_counts.get(pair, 0)
            if count != -negative_count:
                continue
            if count < self.min_frequency:
                break
            left, right = pair
            new_bytes = token_bytes[left] + token_bytes[right]
            del pair_counts[pair]
            if new_bytes in specials:
                # A token spelling '<unk>' etc. would clash with the special of that name.
                continue
            merged = known.get(new_bytes)
            if merged is None:  # two merge paths can spell one string: keep one id for it
                merged = known[new_bytes] = len(token_bytes)
                token_bytes.append(new_bytes)
            merges.append(pair)

            delta = Counter()
            for w in where.pop(pair, ()):
                symbols = words[w]
                new_symbols = _merge_pair(symbols, left, right, merged)
                if len(new_symbols) == len(symbols):
                    continue
                freq = freqs[w]
                for old in pairwise(symbols):
                    delta[old] -= freq
                for new in pairwise(new_symbols):
                    delta[new] += freq
                    where.setdefault(new, set()).add(w)
                words[w] = new_symbols
            for changed, d in delta.items():
                if not d or changed == pair:
                    continue
                total = pair_counts.get(changed, 0) + d
                if total > 0:
                    pair_counts[changed] = total
                    heapq.heappush(heap, (-total, changed))
                else:
                    pair_counts.pop(changed, None)
        return merges

    def _set_merges(self, merges):
        """Rebuild the byte table, merge ranks and vocabulary from a list of merges."""
        token_bytes = [s.encode() for s in Vocabulary.SPECIALS] + [bytes([b]) for b in range(256)]
        known = {b: i for i, b in enumerate(token_bytes) if i >= FIRST_BYTE_ID}
        specials = {s.encode() for s in Vocabulary.SPECIALS}
        ranks = {}
        for rank, (left, right) in enumerate(merges):
            if not (FIRST_BYTE_ID <= left < len(token_bytes)
                    and FIRST_BYTE_ID <= right < len(token_bytes)):
                raise ValueError(f"merge {rank} ({left}, {right}) uses an unknown token id")
            new_bytes = token_bytes[left] + token_bytes[right]
            if new_bytes in specials:
                raise ValueError(f"merge {rank} spells the special token {new_bytes.decode()!r}")
            if (left, right) in ranks:
                raise ValueError(f"merge {rank} ({left}, {right}) is listed twice")
            merged = known.get(new_bytes)
            if merged is None:
                merged = known[new_bytes] = len(token_bytes)
                token_bytes.append(new_bytes)
            ranks[(left, right)] = (rank, merged)
        self.merges = [tuple(m) for m in merges]
        self._token_bytes = token_bytes
        self._ranks = ranks
        self._cache = {}
        shown = ["".join(BYTE_SYMBOLS[b] for b in t) for t in token_bytes[FIRST_BYTE_ID:]]
        self.vocab = Vocabulary(shown)

    # -- encoding

    def _encode_piece(self, piece):
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        symbols = tuple(b + FIRST_BYTE_ID for b in piece.encode("utf-8", "surrogatepass"))
        ranks = self._ranks
        while len(symbols) > 1:
            # Apply the earliest-learned merge present; equivalent to replaying merges in order.
            best = min(pairwise(symbols), key=lambda p: ranks.get(p, (len(ranks),))[0])
            if best not in ranks:
                break
            symbols = _merge_pair(symbols, best[0], best[1], ranks[best][1])
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[piece] = symbols
        return symbols

    def tokenize(self, text):
        vocab = self._fitted()
        return [vocab.tokens[i] for i in self.encode(text)]

    def encode(self, text):
        self._fitted()
        return list(chain.from_iterable(map(self._encode_piece, PRETOKEN.findall(text))))

    def encode_lines(self, lines):
        return self._encode_pieces(list(map(PRETOKEN.findall, lines)), np.int64)

    def encode_block(self, block, dtype=np.int64):
        return self._encode_pieces(list(map(PRETOKEN.findall, block_lines(block))), dtype)

    def _encode_pieces(self, per_line, dtype):
        """(ids, lengths) of lines given as their pre-tokens: each distinct pre-token encoded once
        (cached), the lines' lengths summed from the pieces' lengths with array operations."""
        self._fitted()
        n_pieces = np.fromiter(map(len, per_line), dtype=np.int64, count=len(per_line))
        pieces = list(map(self._encode_piece, chain.from_iterable(per_line)))
        piece_ends = np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)))
        line_ends = np.concatenate([[0], piece_ends])[np.cumsum(n_pieces)]
        lengths = np.diff(line_ends, prepend=0)
        total = int(line_ends[-1]) if line_ends.size else 0
        return np.fromiter(chain.from_iterable(pieces), dtype=dtype, count=total), lengths

    def _bytes(self, ids):
        self._fitted()
        table = self._token_bytes
        return b"".join(table[i] for i in map(int, ids) if i not in self.SILENT_IDS)

    def decode(self, ids):
        # Ids from a model need not form valid UTF-8; encode()'s ids always do.
        return self._bytes(ids).decode("utf-8", errors="replace")

    def decode_sample(self, ids):
        """Generated pieces as text. A smoothed byte-level model can draw bytes that form no
        character (a lone first byte of 'é' before an 'i'); they are left out rather than shown
        as U+FFFD, and so is an incomplete last character: an incremental decoder not told the
        input is final holds it back."""
        return codecs.getincrementaldecoder("utf-8")(errors="ignore").decode(self._bytes(ids), final=False)

    def token_text(self, token_id):
        """A piece's bytes as text; a piece that is not whole characters shows its bytes as \\xNN."""
        token_id = int(token_id)
        if token_id < FIRST_BYTE_ID:
            return self._fitted().token(token_id)
        return self._bytes([token_id]).decode("utf-8", errors="backslashreplace")

    def _state(self):
        return {"merges": [list(m) for m in self.merges]}

    def _load_state(self, data):
        merges = data.get("merges")
        if not isinstance(merges, list) or not all(
            isinstance(m, list) and len(m) == 2
            and all(isinstance(i, int) and not isinstance(i, bool) for i in m)
            for m in merges
        ):
            raise CheckpointError("BPE merges are malformed: expected a list of [left, right] ids")
        try:
            self._set_merges(merges)
        except ValueError as exc:
            raise CheckpointError(f"BPE merges are malformed: {exc}") from None
        if len(self.vocab) > self.vocab_size:
            raise CheckpointError(
                f"BPE merges are malformed: {len(self.vocab)} tokens exceed vocab_size "
                f"{self.vocab_size}"
            )


# ----------------------------------------------------------------------------------------------
# Saving and loading

TOKENIZERS = {cls.kind: cls for cls in (WordTokenizer, CharTokenizer, BPETokenizer)}


def tokenizer_from_dict(data):
    """A fitted tokenizer from :meth:`Tokenizer.to_dict` output; CheckpointError if malformed."""
    if not isinstance(data, dict):
        raise CheckpointError("tokenizer data is malformed: expected a JSON object")
    if data.get("format") != FORMAT:
        raise CheckpointError(f"tokenizer data is malformed: 'format' is not {FORMAT!r}")
    if data.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"tokenizer format version {data.get('version')!r} is not supported "
            f"(this langmodels reads version {FORMAT_VERSION})"
        )
    cls = TOKENIZERS.get(data.get("type"))
    if cls is None:
        raise CheckpointError(
            f"unknown tokenizer type {data.get('type')!r}; types: {', '.join(TOKENIZERS)}"
        )
    params = data.get("params")
    expected = set(cls().get_params())
    if not isinstance(params, dict) or set(params) != expected:
        raise CheckpointError(
            f"tokenizer data is malformed: {cls.kind} params must be {', '.join(sorted(expected))}"
        )
    tokenizer = cls(**params)
    try:
        tokenizer.check_params()
    except ConfigError as exc:
        raise CheckpointError(f"tokenizer data is malformed: {exc}") from None
    tokenizer._load_state(data)
    return tokenizer


def save_tokenizer(tokenizer, path):
    """Write the tokenizer as JSON, atomically (temporary file, then rename)."""
    write_atomic(path, json.dumps(tokenizer.to_dict()).encode("utf-8"))


def load_tokenizer(path):
    """Read a tokenizer written by :func:`save_tokenizer`; CheckpointError naming the path."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such tokenizer file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    try:
        return tokenizer_from_dict(data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
