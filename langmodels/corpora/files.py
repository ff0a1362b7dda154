"""A user's own text: a file, a folder of files, or a split folder (docs/design.md section 8).

How a path is read:

- a **split folder**: some file names carry a split name as a part separated by ".", "-" or "_"
  (see :data:`SPLIT_WORDS`: ``train.txt``, ``ptb.train.txt``, ``wiki.valid.tokens``,
  ``dev.txt.gz``). Each split is its one file, never mixed with another; several files for one
  split, a file naming two splits, or no train file is an error naming the files. Without a valid
  file, valid is the last 10 % of the train file's lines (at least one) and train the rest; without
  a test file, test is the valid text (as nanoGPT has train and val only: neural models then train
  with fixed budgets, as on Tiny Shakespeare). Files without a split name (a README) are not read.
- any other **file or folder** (a folder's files in path order): its lines split contiguously
  80/10/10 (each part non-empty). A text of one or two lines has no such split; it can only be
  scored whole.
- in every case ``all`` is every line once, in order (a split folder: train, valid, test files).

Every file is read through reading.py (plain, .gz, .bz2 or .xz; UTF-8; blank lines dropped) in
one streaming pass when the corpus is loaded, which checks it and counts its lines; the splits
then read their lines from the files only when asked (see split.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from langmodels.errors import CorpusError
from langmodels.options import check_text

from .reading import BLOCK_BYTES, FileScan, is_binary, line_blocks, scan
from .split import ALL, SPLITS, Corpus, Split, default_mode

# A split's names as they appear in distributed corpora: PTB (ptb.valid.txt), WikiText
# (wiki.valid.tokens), Hugging Face datasets (validation), CoNLL-style dev sets, nanoGPT (val.bin).
SPLIT_WORDS = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid",
               "test": "test"}
NAME_PARTS = re.compile(r"[._-]")
VALID_FRACTION = 10  # without a valid file, valid is the last 1/10 of the train file's lines


def _lines(n):
    return f"{n:,} line" + ("" if n == 1 else "s")


def split_named(filename):
    """The split a file name names ("train", "valid" or "test"), or None; a name with two
    different split words (``train-test.txt``) is an error."""
    check_text(filename, "split_named's file name")
    found = {SPLIT_WORDS[part] for part in NAME_PARTS.split(filename.lower()) if part in SPLIT_WORDS}
    if len(found) > 1:
        raise CorpusError(f"{filename} names two splits ({', '.join(s for s in SPLITS if s in found)}); "
                          "rename it so that it names one")
    return found.pop() if found else None


# ----------------------------------------------------------------------------------------------
# Lines of files, read when needed


@dataclass(frozen=True)
class Piece:
    """Lines [first, end) of a scanned file (counting non-blank lines from 0)."""

    scan: FileScan
    first: int
    end: int

    @property
    def whole(self):
        return self.first == 0 and self.end == self.scan.n_lines


class FileLines:
    """The lines of some files, or parts of them, in order: what a file-backed Split reads."""

    def __init__(self, pieces):
        merged = []
        for piece in pieces:
            if piece.end <= piece.first:
                continue
            last = merged[-1] if merged else None
            if last is not None and last.scan is piece.scan and last.end == piece.first:
                merged[-1] = Piece(piece.scan, last.first, piece.end)  # two parts of one file meet again
            else:
                merged.append(piece)
        self.pieces = tuple(merged)
        self.n_lines = sum(piece.end - piece.first for piece in self.pieces)
        one = self.pieces[0] if len(self.pieces) == 1 else None
        self.source = str(one.scan.path) if one else None
        self.source_sha256 = one.scan.source_sha256 if one and one.whole else None
        self.text_sha256 = one.scan.text_sha256 if one and one.whole else None

    @classmethod
    def whole(cls, scans):
        return cls([Piece(s, 0, s.n_lines) for s in scans])

    def __add__(self, other):
        return FileLines(self.pieces + other.pieces)

    def files(self):
        return [str(piece.scan.path) for piece in self.pieces]

    def slice(self, start, stop):
        """Lines [start, stop) of these lines."""
        pieces, seen = [], 0
        for piece in self.pieces:
            size = piece.end - piece.first
            lo, hi = max(start - seen, 0), min(stop - seen, size)
            if lo < hi:
                pieces.append(Piece(piece.scan, piece.first + lo, piece.first + hi))
            seen += size
        return FileLines(pieces)

    def blocks(self, block_chars=BLOCK_BYTES):
        for piece in self.pieces:
            yield from _piece_blocks(piece, block_chars)


def _piece_blocks(piece, block_bytes):
    """Text blocks of lines [first, end) of a file (each ends with a newline); a plain file is
    read from the last block start before line ``first``."""
    start, seen = piece.scan.seek_for(piece.first)
    for lines, text in line_blocks(piece.scan.path, block_bytes, start=start):
        lo, hi = seen, seen + len(lines)
        seen = hi
        if hi <= piece.first:
            continue
        if lo >= piece.end:
            break
        if piece.first <= lo and hi <= piece.end:
            yield text
        else:
            yield "\n".join(lines[max(piece.first - lo, 0):min(piece.end, hi) - lo]) + "\n"
        if hi >= piece.end:
            break


# ----------------------------------------------------------------------------------------------
# Loading a path


def load_path(path, name, level):
    """The Corpus of a user's file or folder (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = text_files(path)
        if not files:
            raise CorpusError(f"{name} has no text files (hidden and binary files are skipped)")
        named = {file: split_named(file.name) for file in files}
        if any(named.values()):
            return _split_folder(path, name, level, files, named)
        scans = [scan(file) for file in files]
        how = f"no file name in {name} names a split, so the lines of its {len(files)} files (in path order)"
    elif path.is_file():
        scans = [scan(path)]
        how = f"{name} is one file, so its lines"
        try:
            split = split_named(path.name)
        except CorpusError:  # a file given alone is read alone, whatever its name says
            split = None
        if split is not None:
            how = (f"{name} is one file (its name says {split}: give its folder to read the folder's "
                   "split files), so its lines")
    else:
        raise CorpusError(f"{name} is not a regular file or folder")
    return _contiguous(name, level, scans, how)


def _contiguous(name, level, scans, how):
    """Train, valid and test as the first 80 %, next 10 % and last 10 % of the lines."""
    n = sum(s.n_lines for s in scans)
    if n == 0:
        raise CorpusError(f"{name} is empty (no non-blank lines)")
    mode = default_mode(level)
    lines = FileLines.whole(scans)
    attrs = {"corpus": name, "level": level, "mode": mode}
    splits = {ALL: Split.from_reader(lines, name=ALL, **attrs)}
    if n < 3:
        refusal = (f"{name} has too few lines ({n} non-blank) to split into train, valid and test "
                   "(3 needed); score the whole text with --split all (split=\"all\")")
        return Corpus(name, level, mode, splits, refusal=refusal, files=True)
    # Contiguous 80/10/10 by lines, in integer arithmetic, each part kept non-empty.
    train_end = max(1, min(n * 8 // 10, n - 2))
    valid_end = max(train_end + 1, min(n * 9 // 10, n - 1))
    for split_name, (start, stop) in zip(SPLITS, ((0, train_end), (train_end, valid_end), (valid_end, n))):
        splits[split_name] = Split.from_reader(lines.slice(start, stop), name=split_name, **attrs)
    reading = (f"{how} were split contiguously 80/10/10: train {_lines(train_end)}, "
               f"valid {_lines(valid_end - train_end)}, test {_lines(n - valid_end)} "
               f"(--split all / split=\"all\" scores all {_lines(n)})")
    return Corpus(name, level, mode, splits, reading=reading, files=True)


def _split_folder(folder, name, level, files, named):
    def shown(file):
        return file.relative_to(folder).as_posix()

    by_split = {split: [file for file in files if named[file] == split] for split in SPLITS}
    for split, found in by_split.items():
        if len(found) > 1:
            raise CorpusError(f"{name} has {len(found)} files for the {split} split "
                              f"({', '.join(map(shown, found))}); keep one file per split")
    if not by_split["train"]:
        present = ", ".join(shown(found[0]) for found in by_split.values() if found)
        raise CorpusError(f"{name} has split files ({present}) but no train file; a split folder "
                          "needs one (a name such as train.txt or ptb.train.txt)")
    scans = {}
    for split, found in by_split.items():
        if found:
            scans[split] = scan(found[0])
            if scans[split].n_lines == 0:
                raise CorpusError(f"{found[0]} is empty (no non-blank lines)")

    mode = default_mode(level)
    attrs = {"corpus": name, "level": level, "mode": mode}
    parts = {split: FileLines.whole([found]) for split, found in scans.items()}
    train_file = shown(by_split["train"][0])
    said = [f"{split} {shown(by_split[split][0])} ({_lines(scans[split].n_lines)})" for split in scans]
    said = [f"{name} is a split folder: " + ", ".join(said)]
    if "valid" not in parts:
        n = scans["train"].n_lines
        if n < 2:
            raise CorpusError(f"{by_split['train'][0]} has {_lines(n)}: too few to hold out a valid split "
                              "from it; add a valid file")
        held = max(1, n // VALID_FRACTION)
        parts["train"], parts["valid"] = parts["train"].slice(0, n - held), parts["train"].slice(n - held, n)
        said.append(f"no valid file: valid is the last {_lines(held)} of {train_file} (10 %), "
                    f"train its first {_lines(n - held)}")
    whole = parts["train"] + parts["valid"]
    if "test" in parts:
        whole = whole + parts["test"]
    else:
        parts["test"] = parts["valid"]
        said.append("no test file: test is the valid text (neural models train with fixed budgets, "
                    "without early stopping)")
    ignored = [shown(file) for file in files if named[file] is None]
    if ignored:
        said.append(f"not read (no split name): {', '.join(ignored)}")
    splits = {split: Split.from_reader(parts[split], name=split, **attrs) for split in SPLITS}
    splits[ALL] = Split.from_reader(whole, name=ALL, **attrs)
    return Corpus(name, level, mode, splits, reading="; ".join(said), files=True)


def text_files(folder):
    """Regular, non-hidden, non-binary files under ``folder`` (compressed ones judged by their
    decompressed bytes), sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            file = Path(dirpath) / filename
            if filename.startswith(".") or not file.is_file():
                continue
            if not is_binary(file):
                found.append(file)
    return sorted(found, key=lambda file: file.relative_to(folder).parts)
