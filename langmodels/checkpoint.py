"""Checkpoint folders: written atomically, read back only after every checksum agrees.

A checkpoint is a directory holding `config.json` (class, hyper-parameters, library and format
version, and the sha256 of every other file), `tokenizer.json`, and the model's state
(`weights.safetensors` for neural models, one `.npy` file per table for n-gram models). Nothing in
it is pickled, so loading a checkpoint never runs code. A new checkpoint is assembled in a temporary
sibling folder and renamed into place, so a crash or Ctrl-C never leaves a half-written one where a
good one stood.

A file's content is given as bytes, or as the path of a finished file (an n-gram table of many
gigabytes), which is hard-linked into the checkpoint when over LINK_BYTES and the file system
allows (the checkpoint and the model it came from then share it, as a loaded model shares its
checkpoint's files), and copied by the kernel otherwise; either way it is hashed in blocks,
never held in memory. `.npy` files are handed
back on reading as paths, to be memory-mapped, and are checked in a way whose cost does not grow
with their size:

- every file's size is recorded (`sizes`) and checked on reading: truncation or growth is caught;
- a file of at most FULL_CHECK_BYTES, and every file read as bytes, has its whole sha256 checked;
- a larger mapped file has `samples`: the sha256 of SAMPLE_BLOCKS blocks of SAMPLE_BYTES at fixed
  offsets spread over it (its first and last blocks among them, so the .npy header is covered),
  512 KiB read however large the file; a damaged region wider than the spacing, a bad header or
  a wrong tail is caught on every load;
- `verify_checkpoint(path)` hashes every file whole (seconds per gigabyte), for a full check
  of a single flipped bit anywhere, after copying a checkpoint or when in doubt.

So loading a model of any size takes milliseconds (KenLM's binary files, also mapped, are not
checksummed at all), and the full guarantee is one call away.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import CheckpointError

FORMAT = "langmodels-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MAPPED_SUFFIX = ".npy"  # files handed back by read_checkpoint as paths, to be memory-mapped
FULL_CHECK_BYTES = 2**20  # mapped files up to this size have their whole sha256 checked on load
SAMPLE_BLOCKS = 64  # a larger one: the sha256 of 64 blocks of 8 KiB spread over it (512 KiB read)
SAMPLE_BYTES = 8 * 2**10
LINK_BYTES = 64 * 2**20  # a finished file larger than this is hard-linked into a checkpoint, not copied
HASH_BLOCK = 8 * 2**20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (resolved path, size, mtime_ns) -> sha256: a mixture checksums its components' files for their
# own config.json and again for its own; a file is read once.
_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: Path, *, cached: bool = True) -> str:
    """sha256 hex of a file, read in blocks (hashlib releases the GIL: files hash in parallel).
    cached: reuse the digest of a file this process hashed with the same size and mtime (when
    writing; a check on reading never trusts it, since damage on disk leaves the mtime alone)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS or not cached:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(HASH_BLOCK):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def sample_offsets(size: int) -> list[int]:
    """Where the sampled blocks of a file of `size` bytes start: evenly spread, first and last included."""
    if size <= SAMPLE_BLOCKS * SAMPLE_BYTES:
        return [0]  # small enough to hash whole (the block length then covers it: see sample_sha256)
    last = size - SAMPLE_BYTES
    return sorted({last * i // (SAMPLE_BLOCKS - 1) for i in range(SAMPLE_BLOCKS)})


def sample_sha256(path: Path, size: int) -> str:
    """sha256 of the sampled blocks of a file (SAMPLE_BLOCKS * SAMPLE_BYTES read whatever its size)."""
    digest = hashlib.sha256()
    length = SAMPLE_BYTES if size > SAMPLE_BLOCKS * SAMPLE_BYTES else size
    with open(path, "rb") as handle:
        for offset in sample_offsets(size):
            handle.seek(offset)
            digest.update(handle.read(length))
    return digest.hexdigest()


def _content_size(content) -> int:
    return len(content) if isinstance(content, (bytes, bytearray, memoryview)) else Path(content).stat().st_size


def _digest(content) -> str:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return sha256_hex(bytes(content))
    return file_sha256(Path(content))


def is_checkpoint(path: Path) -> bool:
    """True when `path` holds a config.json written by this library (intact or not)."""
    try:
        return json.loads((path / CONFIG_FILE).read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_file(path: Path, data) -> None:
    """Write bytes, or bring in a finished file: a file over LINK_BYTES is hard-linked (instant,
    no copy) where source and checkpoint share a file system, so it is shared with its source as
    a memory-mapped model shares its checkpoint's; other files are copied by the kernel
    (sendfile), never via memory."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a name may hold a subfolder (a mixture's components)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        source = Path(data)
        try:
            if source.stat().st_size <= LINK_BYTES:
                raise OSError("small: copied")
            os.link(source, path)
            return
        except OSError:
            shutil.copyfile(source, path)
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
        return
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write one file as a temporary sibling, then rename it over `path`.

    open(..., "x") rather than mkstemp, so the file gets the usual permissions (umask).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_checkpoint(path: str | os.PathLike, config: dict, files: dict[str, bytes | os.PathLike]) -> Path:
    """Write `files` and `config.json` (with their checksums) as the folder `path`, atomically.
    A name with a slash ("component-0/weights.safetensors") is written in that subfolder. A value
    is the file's bytes or the path of a finished file to bring in (linked or copied)."""
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise CheckpointError(f"cannot save to {target}: it exists and is not a folder")
        if any(target.iterdir()) and not is_checkpoint(target):
            raise CheckpointError(f"refusing to overwrite {target}: it is not empty and not a langmodels checkpoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is an ordinary folder
    try:
        for name, data in files.items():
            _write_file(staging / name, data)
        _write_file(staging / CONFIG_FILE, config_json(config, files))
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def config_json(config: dict, files: dict[str, bytes | os.PathLike]) -> bytes:
    """The config.json of a checkpoint holding `files`: `config`, the format, every file's sha256
    and size, and the sampled digest of each mapped file too large to hash on every load."""
    names = list(files)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # big files hash side by side
        digests = list(pool.map(lambda name: _digest(files[name]), names))
    manifest = dict(zip(names, digests))
    sizes = {name: _content_size(files[name]) for name in names}
    samples = {
        name: sample_sha256(Path(files[name]), sizes[name])
        for name in names
        if _is_mapped(name) and sizes[name] > FULL_CHECK_BYTES and not isinstance(files[name], (bytes, bytearray))
    }
    for name in names:  # a large mapped file given as bytes is sampled from the bytes themselves
        if _is_mapped(name) and sizes[name] > FULL_CHECK_BYTES and name not in samples:
            data = bytes(files[name])
            samples[name] = sha256_hex(b"".join(data[o : o + SAMPLE_BYTES] for o in sample_offsets(len(data))))
    full_config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config, "files": manifest, "sizes": sizes}
    if samples:
        full_config["samples"] = samples
    return json.dumps(full_config, indent=2, sort_keys=True).encode("utf-8")


def _is_mapped(name: str) -> bool:
    return name.endswith(MAPPED_SUFFIX)


def read_checkpoint(path: str | os.PathLike, *, deep: bool = False) -> tuple[dict, dict[str, bytes | Path]]:
    """Return (config, files) after checking format, version and every file's checksum.

    A `.npy` file comes back as its Path, to be memory-mapped: checked by size and, when larger
    than FULL_CHECK_BYTES, by its sampled digest only (see the module's notes), unless `deep`.
    Every other file comes back as bytes, its whole sha256 checked."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    config_path = folder / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} is not a checkpoint: {CONFIG_FILE} is missing") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{config_path} is not valid JSON (truncated or edited)") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a langmodels checkpoint config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has checkpoint format version {config.get('format_version')!r}; "
            f"this langmodels reads version {FORMAT_VERSION}"
        )
    manifest = config.get("files")
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{config_path} lists no files (edited?)")
    sizes = config.get("sizes") or {}
    samples = config.get("samples") or {}
    if not isinstance(sizes, dict) or not isinstance(samples, dict):
        raise CheckpointError(f"{config_path} has malformed sizes or samples (edited?)")
    files = {}
    for name, digest in manifest.items():
        where = folder / name
        if _is_mapped(name):
            files[name] = _checked_mapped(where, digest, sizes.get(name), samples.get(name), deep)
            continue
        try:
            data = where.read_bytes()
        except OSError:
            raise CheckpointError(f"checkpoint file {where} is missing") from None
        if sha256_hex(data) != digest:
            raise CheckpointError(f"checkpoint file {where} does not match its checksum (truncated or edited)")
        files[name] = data
    return config, files


def _checked_mapped(where: Path, digest: str, size, sample: str | None, deep: bool) -> Path:
    """A mapped file's path after the load-time check its size allows (module notes)."""
    damaged = f"checkpoint file {where} does not match its checksum (truncated or edited)"
    try:
        actual = where.stat().st_size
    except OSError:
        raise CheckpointError(f"checkpoint file {where} is missing") from None
    if size is not None and actual != size:
        raise CheckpointError(f"checkpoint file {where} has {actual} bytes, its checkpoint says {size} (truncated?)")
    if deep or actual <= FULL_CHECK_BYTES or sample is None:
        if file_sha256(where, cached=False) != digest:
            raise CheckpointError(damaged)
    elif sample_sha256(where, actual) != sample:
        raise CheckpointError(damaged)
    return where


def verify_checkpoint(path: str | os.PathLike) -> dict:
    """Hash every file of a checkpoint whole (the deep check); its config, or CheckpointError."""
    config, _ = read_checkpoint(path, deep=True)
    return config


RETIRED = ".retired-"  # prefix of a replaced folder between the two renames of replace_folder


def replace_folder(staging: Path, target: Path) -> None:
    """Move a finished folder into place. A non-empty folder cannot be replaced in one rename, so
    an existing target is moved aside first (as RETIRED + name + .pid) and deleted after."""
    if target.exists():
        retired = target.with_name(f"{RETIRED}{target.name}.{os.getpid()}")
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)
