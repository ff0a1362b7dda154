"""Reading a text file as distributed: plain or compressed (.gz, .bz2, .xz), in blocks.

A file is read as a stream of decompressed bytes cut into blocks of whole lines (a block ends just
after a b"\\n", which never occurs inside a multi-byte UTF-8 character, nor between the two bytes of
"\\r\\n"), so that no more than a block and one line are held at once. Each block is decoded as
UTF-8 (a bad byte is reported with its offset in the decompressed bytes) and normalised as a
corpus line reader always has: a byte-order mark at the start of the file is dropped, "\\r\\n"
ends a line as "\\n" does, and blank lines (only whitespace) are dropped. A normalised block is
the kept lines each followed by "\\n".
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zlib
from dataclasses import dataclass
from itertools import compress
from pathlib import Path

from langmodels.errors import CorpusError

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
BLOCK_BYTES = 1 << 22
# git's heuristic for binary files (buffer_is_binary): a NUL byte in the first 8000 bytes.
BINARY_SNIFF_BYTES = 8000
# What a damaged or mislabelled compressed file raises while it is read.
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression(path):
    """".gz", ".bz2" or ".xz" for a compressed file (by its name), else None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in COMPRESSED else None


def _open(path):
    return COMPRESSED.get(compression(path), open)(path, "rb")


def _unreadable(path, exc):
    kind = compression(path)
    if kind and not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return CorpusError(f"{path} is not a readable {kind} file ({exc})")
    return CorpusError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})")


def head_bytes(path, size=BINARY_SNIFF_BYTES):
    """The first ``size`` decompressed bytes of a file."""
    try:
        with _open(path) as stream:
            return stream.read(size)
    except DECOMPRESSION_ERRORS as exc:
        raise _unreadable(path, exc) from None


def is_binary(path):
    """A NUL byte in the first decompressed bytes: not text (git's heuristic)."""
    return b"\0" in head_bytes(path)


def raw_line_blocks(path, block_bytes=BLOCK_BYTES, start=0):
    """(offset, bytes): the decompressed bytes of a file in blocks of whole lines (each ends with
    b"\\n" except a last line without one); ``offset`` is where the block starts. ``start``, the
    offset of a line start in a plain (uncompressed) file, skips what comes before it."""
    offset, carry = start, b""
    try:
        with _open(path) as stream:
            if start:
                stream.seek(start)
            while True:
                data = stream.read(block_bytes)
                if not data:
                    break
                if carry:
                    data, carry = carry + data, b""
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no line ends in this block yet: a long line, read on
                    carry = data
                    continue
                if cut < len(data):
                    data, carry = data[:cut], data[cut:]
                yield offset, data
                offset += len(data)
    except DECOMPRESSION_ERRORS as exc:
        raise _unreadable(path, exc) from None
    if carry:
        yield offset, carry


def decode(path, offset, data):
    """UTF-8 text of a block that starts ``offset`` bytes into the decompressed file."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = " of its decompressed bytes" if compression(path) else ""
        raise CorpusError(
            f"{path} is not UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset {offset + exc.start}{where})"
        ) from None


def normalise(text, first):
    """(kept lines, their text): a decoded block without its blank lines, "\\r\\n" read as "\\n",
    and without the byte-order mark when it is the file's ``first`` block."""
    if first:
        text = text.removeprefix("\ufeff")  # a byte-order mark is not text
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # what follows the block's last newline
    kept = list(compress(lines, map(str.strip, lines)))  # a line of only whitespace is blank
    if len(kept) == len(lines) and text.endswith("\n"):
        return kept, text
    return kept, "\n".join(kept) + "\n" if kept else ""


def line_blocks(path, block_bytes=BLOCK_BYTES, on_bytes=None, start=0):
    """(lines, text) of each block of a file, normalised (see :func:`normalise`); ``on_bytes``,
    if given, sees every decompressed byte block first (for the file's own sha256); ``start`` as
    in :func:`raw_line_blocks`."""
    for offset, data in raw_line_blocks(path, block_bytes, start):
        if on_bytes is not None:
            on_bytes(data)
        lines, text = normalise(decode(path, offset, data), first=offset == 0)
        if lines:
            yield lines, text


@dataclass(frozen=True)
class FileScan:
    """What one pass over a file learns: its non-blank lines, the sha256 of its bytes as
    distributed (decompressed) and of its normalised text, and that text's characters; for a plain
    file also ``seeks``, (byte offset, non-blank lines before it) at each block start, so that
    reading from line k starts near it instead of at the top."""

    path: Path
    n_lines: int
    source_sha256: str
    text_sha256: str
    n_chars: int
    seeks: tuple = ((0, 0),)

    def seek_for(self, line):
        """(byte offset, lines before it) of the last block start at or before ``line``."""
        best = (0, 0)
        for offset, before in self.seeks:
            if before > line:
                break
            best = (offset, before)
        return best


def scan(path, block_bytes=BLOCK_BYTES):
    """One streaming pass over a file (checks it is UTF-8 and counts its lines)."""
    raw, text_digest = hashlib.sha256(), hashlib.sha256()
    n_lines = n_chars = 0
    seeks = [(0, 0)]
    plain = compression(path) is None
    for offset, data in raw_line_blocks(path, block_bytes):
        if plain and offset:
            seeks.append((offset, n_lines))
        raw.update(data)
        lines, text = normalise(decode(path, offset, data), first=offset == 0)
        n_lines += len(lines)
        n_chars += len(text)
        text_digest.update(text.encode("utf-8"))
    return FileScan(Path(path), n_lines, raw.hexdigest(), text_digest.hexdigest(), n_chars, tuple(seeks))
