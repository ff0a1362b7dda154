"""Token ids of a corpus, tokenized once and kept on disk as a memory-mapped array.

The way nanoGPT's ``prepare.py`` writes a corpus's ids once to a binary file that training then
reads through ``np.memmap``: :func:`token_ids` streams a split's text block by block through a
fitted tokenizer, writes every line's own ids (no markers) one after another to ``ids.npy``
(uint16 when the vocabulary has at most 65,535 tokens, else uint32) and where each line starts to
``offsets.npy`` (int64, one more than the lines), and keeps them under
``cache_dir()/ids/<sha256 of the text>-<sha256 of the tokenizer's JSON>/``. Any later call with
the same text and the same tokenizer, from any model or run, maps that entry instead of
tokenizing again; a changed text or tokenizer has another key. Beside the arrays, ``meta.json``
holds the line and token counts, the dtype and the sha256 of both arrays' bytes, all checked on
reading: a damaged or truncated entry is rebuilt. An entry is written in a temporary folder and
renamed into place, so a reader never sees half of one; the folder carries its writer's pid
(checkpoint.staging_folder), and those of dead writers are removed when the entry is next
written. An unwritable cache means ids held in memory, but a full disk (or quota) while writing
one is a DiskFullError naming the path, nothing half-written left behind. Texts of fewer than
MIN_CACHED_LINES lines (a prompt, a few lines in a test) are tokenized in memory and leave
nothing on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import naming, staging_folder
from .corpora import cache_dir, split_sha256
from .errors import CorpusError, DiskFullError, LangmodelsError
from .tokenizers import BLOCK_CHARS, Tokenizer, text_blocks

FORMAT = "langmodels.token_ids"
FORMAT_VERSION = 1
IDS_FILE, OFFSETS_FILE, META_FILE = "ids.npy", "offsets.npy", "meta.json"
UINT16_MAX_VOCAB = 65_535  # ids 0 .. 65,534 fit in uint16 (the contract's bound, C-2)
HASH_CHUNK = 1 << 24  # bytes read at a time when checking a file's checksum
#: texts of fewer lines are tokenized in memory and not cached (a prompt, a test's few lines)
MIN_CACHED_LINES = 1000


@dataclass(frozen=True, eq=False)
class TokenIds:
    """Every line's ids, concatenated, and where each line starts.

    ids: 1-D uint16/uint32 array (a read-only np.memmap when it comes from the cache);
    offsets: int64, n_lines + 1 entries, line i is ``ids[offsets[i]:offsets[i + 1]]``;
    final_newline: whether the text ends with a newline (False when its last line has none);
    path: the cache entry's folder, None when the ids are held in memory only.
    """

    ids: np.ndarray
    offsets: np.ndarray
    final_newline: bool = True
    path: Path | None = None

    @property
    def lengths(self) -> np.ndarray:
        """Tokens of each line (int64)."""
        return np.diff(self.offsets)

    @property
    def n_lines(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.n_lines

    def line(self, i: int) -> np.ndarray:
        """The ids of line i."""
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def with_line_ends(self, end_id: int, *, final: bool = True) -> np.ndarray:
        """One int64 stream with ``end_id`` after every line (after the last only when ``final``):
        a word model's stream with </s> ends, or a character text with its newlines back."""
        ends = self.offsets[1:] if final else self.offsets[1:-1]
        return np.insert(np.asarray(self.ids, dtype=np.int64), ends, end_id)

    def __repr__(self) -> str:
        where = f", cached at {self.path}" if self.path else ""
        return f"TokenIds({self.n_lines} lines, {self.n_tokens} tokens, {self.ids.dtype}{where})"


def id_dtype(vocab_size: int) -> np.dtype:
    """uint16 where every id fits (a vocabulary of at most 65,535 tokens), else uint32."""
    return np.dtype(np.uint16 if vocab_size <= UINT16_MAX_VOCAB else np.uint32)


_MEMO = "_sha256_memo"


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer's JSON (keys sorted): its kind, settings and learned state.

    Kept on the tokenizer with the attribute objects it was computed from, and reused while each
    attribute is still the same object (a fit or a load binds a new vocabulary): serialising and
    hashing a vocabulary took 13 ms of a 20 ms evaluate() of 100 Brown lines."""
    attributes = [(name, value) for name, value in vars(tokenizer).items() if name != _MEMO]
    memo = vars(tokenizer).get(_MEMO)
    if memo is not None and len(memo[0]) == len(attributes) and all(
            name == known and value is same for (name, value), (known, same) in zip(attributes, memo[0])):
        return memo[1]
    data = json.dumps(tokenizer.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
    setattr(tokenizer, _MEMO, (attributes, digest))
    return digest


def _n_lines(source) -> int:
    n = getattr(source, "n_lines", None)
    return n if isinstance(n, int) else len(source)


def _final_newline(source) -> bool:
    return bool(getattr(source, "trailing_newline", True))


def token_ids(source, tokenizer: Tokenizer, *, cache: bool = True, progress: bool | None = None,
              block_chars: int = BLOCK_CHARS) -> TokenIds:
    """The token ids of a split (or list of lines) under a fitted tokenizer.

    Line i's ids equal ``tokenizer.encode_lines(lines)``'s for that line. With ``cache`` (and a
    text of at least MIN_CACHED_LINES lines) they come from, or go to, the id cache under
    ``cache_dir()/ids``, keyed by the text's sha256 (``split_sha256``: a Split's own, kept) and
    the tokenizer's (:func:`tokenizer_sha256`); an unwritable cache folder just means ids held
    in memory. ``progress``: a tqdm bar (MB of text per second) on stderr while the ids are
    written; None shows it on a terminal only. A list whose items hold a newline is refused
    (CorpusError): its text would have more lines than the list.
    """
    if isinstance(source, str):
        raise LangmodelsError("token_ids takes a list of lines or a Corpus split, not one string")
    tokenizer._fitted()
    if not cache or _n_lines(source) < MIN_CACHED_LINES:
        return _encode_in_memory(source, tokenizer, block_chars)
    folder = cache_dir() / "ids" / f"{split_sha256(source)}-{tokenizer_sha256(tokenizer)}"
    found = read_entry(folder)
    if found is not None:
        return found
    try:
        return _write_entry(folder, source, tokenizer, progress, block_chars)
    except DiskFullError:
        raise
    except OSError:  # an unwritable cache just means no cache
        return _encode_in_memory(source, tokenizer, block_chars)


# ----------------------------------------------------------------------------------------------
# Encoding


def _encoded_blocks(source, tokenizer, dtype, block_chars, bar=None):
    """(ids, lengths) per block of the text, in order."""
    for block in text_blocks(source, block_chars):
        if not block:
            continue
        yield tokenizer.encode_block(block, dtype)
        if bar is not None:
            bar.update(len(block.encode("utf-8", "surrogatepass")))


def _check_lines(source, n_lines):
    """A list's lines must not hold newlines: its text would have more lines than the list."""
    expected = _n_lines(source)
    if n_lines != expected:
        raise CorpusError(
            f"the text has {n_lines} lines but the list holds {expected}: a line contains a newline "
            "character (give one line per list item)"
        )


def _offsets(lengths: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.concatenate(lengths or [np.zeros(0, np.int64)]))]).astype(np.int64)


def _encode_in_memory(source, tokenizer, block_chars) -> TokenIds:
    dtype = id_dtype(len(tokenizer.vocab))
    parts, lengths = [], []
    for ids, line_lengths in _encoded_blocks(source, tokenizer, dtype, block_chars):
        parts.append(ids)
        lengths.append(line_lengths)
    offsets = _offsets(lengths)
    _check_lines(source, len(offsets) - 1)
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return TokenIds(ids, offsets, _final_newline(source))


# ----------------------------------------------------------------------------------------------
# The cache: one folder per (text, tokenizer)


def _data_sha256(path: Path, start: int, size: int) -> str | None:
    """sha256 of ``size`` bytes of a file from ``start``; None if the file is shorter."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = size
        while left:
            chunk = f.read(min(left, HASH_CHUNK))
            if not chunk:
                return None
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _npy_data(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, offset of the data) from a .npy file's header; ValueError if malformed."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version != (1, 0):
            raise ValueError(f"unexpected .npy version {version}")
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        if fortran_order or dtype.hasobject:
            raise ValueError("not a plain array")
        return shape, dtype, f.tell()


def _checked_array(path: Path, expected_shape: tuple, expected_dtype: np.dtype, sha256: str) -> np.ndarray:
    """The .npy file memory-mapped, after its header, size and data checksum are found as
    expected; ValueError otherwise."""
    shape, dtype, start = _npy_data(path)
    if shape != expected_shape or dtype != expected_dtype:
        raise ValueError(f"{path.name} holds {dtype}{shape}, expected {expected_dtype}{expected_shape}")
    size = int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size != start + size:
        raise ValueError(f"{path.name} has {path.stat().st_size - start} bytes of data, expected {size}")
    if _data_sha256(path, start, size) != sha256:
        raise ValueError(f"{path.name}'s checksum differs")
    if size == 0:  # np.memmap cannot map an empty file region
        return np.zeros(shape, dtype=dtype)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def read_entry(folder: Path) -> TokenIds | None:
    """The cached ids in ``folder`` if it holds an intact entry; None if there is none. A damaged
    entry (a file missing, truncated or changed, or meta.json unreadable) is removed, so that the
    caller rebuilds it."""
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError("another format")
        n_lines, n_tokens = int(meta["n_lines"]), int(meta["n_tokens"])
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ValueError(f"dtype {dtype}")
        ids = _checked_array(folder / IDS_FILE, (n_tokens,), dtype, meta["ids_sha256"])
        offsets = _checked_array(folder / OFFSETS_FILE, (n_lines + 1,), np.dtype(np.int64), meta["offsets_sha256"])
        offsets = np.array(offsets)  # small next to the ids: held in memory
        if offsets[0] != 0 or offsets[-1] != n_tokens or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets out of order")
        return TokenIds(ids, offsets, bool(meta["final_newline"]), folder)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        _remove(folder)
        return None


def _remove(folder: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)


def _npy_header(dtype: np.dtype, n: int) -> bytes:
    import io

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _write_entry(folder: Path, source, tokenizer, progress, block_chars, encoded=None) -> TokenIds:
    """Tokenize the text block by block straight into a new cache entry, then map it.
    encoded: the blocks' (ids, lengths) already made (fit_token_ids'), else encode_block's."""
    dtype = id_dtype(len(tokenizer.vocab))
    work = staging_folder(folder)  # after removing what dead writers of this entry left
    try:
        with naming(folder):
            # The number of ids is known only at the end: room is left for the .npy header, whose
            # length does not depend on it (numpy pads it to 128 bytes), and it is written last.
            room = len(_npy_header(dtype, 0))
            ids_sha, n_tokens, lengths = hashlib.sha256(), 0, []
            bar = tqdm(desc="token ids", unit="B", unit_scale=True, unit_divisor=1000, leave=False,
                       disable=True if progress is False else None)
            with open(work / IDS_FILE, "wb") as f, bar:
                f.write(b"\0" * room)
                if encoded is None:
                    encoded = _encoded_blocks(source, tokenizer, dtype, block_chars, bar)
                for ids, line_lengths in encoded:
                    data = ids.tobytes()
                    f.write(data)
                    ids_sha.update(data)
                    n_tokens += len(ids)
                    lengths.append(line_lengths)
                header = _npy_header(dtype, n_tokens)
                if len(header) != room:
                    raise ValueError("the .npy header grew")  # cannot happen for a 1-D array
                f.seek(0)
                f.write(header)
                f.flush()
                os.fsync(f.fileno())
            offsets = _offsets(lengths)
            _check_lines(source, len(offsets) - 1)
            np.save(work / OFFSETS_FILE, offsets, allow_pickle=False)
            meta = {
                "format": FORMAT, "version": FORMAT_VERSION,
                "n_lines": len(offsets) - 1, "n_tokens": n_tokens, "dtype": dtype.name,
                "final_newline": _final_newline(source),
                "ids_sha256": ids_sha.hexdigest(),
                "offsets_sha256": hashlib.sha256(offsets.tobytes()).hexdigest(),
                "tokenizer": tokenizer.kind, "vocab_size": len(tokenizer.vocab),
            }
            (work / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            _remove(folder)  # a damaged entry that could not be removed on reading
            try:
                os.rename(work, folder)
            except OSError:
                if not folder.is_dir():  # not merely another process that finished first
                    raise
    finally:
        _remove(work)
    # Just written and checksummed on the way: mapped without reading it all once more.
    ids = np.load(folder / IDS_FILE, mmap_mode="r", allow_pickle=False) if n_tokens else np.zeros(0, dtype)
    return TokenIds(ids, offsets, _final_newline(source), folder)


# ----------------------------------------------------------------------------------------------
# Fitting and encoding in one pass, over processes


#: texts of fewer lines are fitted and encoded in this process (starting workers costs more)
PARALLEL_MIN_LINES = 200_000


def fit_token_ids(source, tokenizer: Tokenizer, *, workers: int | None = None, progress: bool | None = None,
                  block_chars: int = BLOCK_CHARS) -> TokenIds:
    """Fit `tokenizer` on a split and return its ids: ``token_ids(source, tokenizer.fit(source))``,
    the same vocabulary and the same ids. For a whitespace word tokenizer on a text of at least
    PARALLEL_MIN_LINES lines, one pass over the words instead of two, in `workers` processes
    (default: 2 where there are 2 cores; str.split and dict lookups hold the GIL, so threads
    would not help): worker w takes the text's blocks w, w + W, ..., numbering each word by
    its first appearance in its own blocks (FirstSeen) and writing those ids to a file; the
    workers' counts, summed, make the vocabulary (Vocabulary.from_counts: by count, then by
    word, whatever order they were seen in), and each worker's ids are renumbered into it with
    one gather per block, written in the text's order into the id cache."""
    workers = min(os.cpu_count() or 1, 2) if workers is None else workers
    if (workers < 2 or not hasattr(tokenizer, "first_seen_block") or isinstance(source, str)
            or _n_lines(source) < PARALLEL_MIN_LINES):
        return token_ids(source, tokenizer.fit(source), progress=progress, block_chars=block_chars)
    try:
        (cache_dir() / "ids").mkdir(parents=True, exist_ok=True)
        work = staging_folder(cache_dir() / "ids" / "first-seen")  # dead workers' leftovers removed first
    except DiskFullError:
        raise
    except OSError:
        return token_ids(source, tokenizer.fit(source), progress=progress, block_chars=block_chars)
    try:
        parts = _first_seen_parts(source, tokenizer, work, workers, block_chars)
        if parts is None:  # a worker failed or met a block it cannot split whole: the plain path says why
            return token_ids(source, tokenizer.fit(source), progress=progress, block_chars=block_chars)
        counts: dict[str, int] = {}
        for part in parts:
            for word, n in zip(part.words, part.counts.tolist()):
                counts[word] = counts.get(word, 0) + n
        vocab = tokenizer.fit_counts(counts).vocab
        folder = cache_dir() / "ids" / f"{split_sha256(source)}-{tokenizer_sha256(tokenizer)}"
        found = read_entry(folder)
        if found is not None:
            return found
        dtype = id_dtype(len(vocab))
        for part in parts:  # local rank -> id in the vocabulary (a word under min_count: <unk>)
            part.renumber = np.array([vocab._index.get(word, vocab.unk_id) for word in part.words], dtype=dtype)
        try:
            return _write_entry(folder, source, tokenizer, progress, block_chars, _renumbered(parts))
        except DiskFullError:
            raise
        except OSError:
            return _encode_in_memory(source, tokenizer, block_chars)
    finally:
        _remove(work)


@dataclass
class _Part:
    """What worker w of W wrote: its blocks' ids (ranks of first appearance) one after another,
    the ids and lines per block, the lines' lengths, its words in rank order and their counts."""

    folder: Path
    w: int
    words: list
    counts: np.ndarray
    block_ids: np.ndarray
    block_lines: np.ndarray
    renumber: np.ndarray | None = None

    @classmethod
    def read(cls, folder: Path, w: int):
        words = json.loads((folder / f"words-{w}.json").read_text(encoding="utf-8"))
        sizes = np.load(folder / f"blocks-{w}.npy", allow_pickle=False)
        return cls(folder, w, words, np.load(folder / f"counts-{w}.npy", allow_pickle=False), sizes[0], sizes[1])


def _first_seen_worker(source, tokenizer, w: int, workers: int, folder: Path, block_chars: int) -> None:
    """Worker w's share of fit_token_ids (a forked process: the split is not pickled)."""
    try:
        _first_seen_share(source, tokenizer, w, workers, folder, block_chars)
    except BaseException:  # noqa: BLE001 - a forked worker must never return into the parent's code:
        os._exit(1)  # the plain path, run next, reports what went wrong in one line


def _first_seen_share(source, tokenizer, w: int, workers: int, folder: Path, block_chars: int) -> None:
    from .tokenizers import FirstSeen

    index = FirstSeen()
    counts = np.zeros(0, dtype=np.int64)
    block_ids, block_lines = [], []
    with open(folder / f"ids-{w}.bin", "wb") as ids_file, open(folder / f"lengths-{w}.bin", "wb") as lengths_file:
        for i, block in enumerate(text_blocks(source, block_chars)):
            if i % workers != w:  # (an empty block too is one of worker i % W's, to keep the order)
                continue
            found = tokenizer.first_seen_block(block, index)
            if found is None:
                os._exit(3)
            ids, lengths = found
            if len(index) - 1 > counts.size:
                counts = np.concatenate([counts, np.zeros(len(index) - 1 - counts.size, dtype=np.int64)])
            counts += np.bincount(ids, minlength=counts.size)
            ids_file.write(ids.astype(np.int32).tobytes())
            lengths_file.write(lengths.astype(np.int64).tobytes())
            block_ids.append(ids.size)
            block_lines.append(lengths.size)
    np.save(folder / f"counts-{w}.npy", counts, allow_pickle=False)
    np.save(folder / f"blocks-{w}.npy", np.array([block_ids, block_lines], dtype=np.int64).reshape(2, -1),
            allow_pickle=False)
    (folder / f"words-{w}.json").write_text(json.dumps(index.words(), ensure_ascii=False), encoding="utf-8")


def _first_seen_parts(source, tokenizer, folder: Path, workers: int, block_chars: int):
    """Run the workers (forked) and read what they wrote; None if any failed."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_first_seen_worker, args=(source, tokenizer, w, workers, folder, block_chars))
                 for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    if any(process.exitcode != 0 for process in processes):
        return None
    return [_Part.read(folder, w) for w in range(workers)]


def _renumbered(parts):
    """(ids, lengths) of every block in the text's order: block i is worker i % W's."""
    with contextlib.ExitStack() as stack:
        ids_files = [stack.enter_context(open(p.folder / f"ids-{p.w}.bin", "rb")) for p in parts]
        lengths_files = [stack.enter_context(open(p.folder / f"lengths-{p.w}.bin", "rb")) for p in parts]
        for k in range(max(p.block_ids.size for p in parts)):
            for p, ids_file, lengths_file in zip(parts, ids_files, lengths_files):
                if k < p.block_ids.size:
                    local = np.fromfile(ids_file, dtype=np.int32, count=int(p.block_ids[k]))
                    lengths = np.fromfile(lengths_file, dtype=np.int64, count=int(p.block_lines[k]))
                    yield p.renumber[local], lengths


__all__ = ["TokenIds", "fit_token_ids", "id_dtype", "read_entry", "token_ids", "tokenizer_sha256"]
