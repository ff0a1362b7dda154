"""Checkpoint folders: written atomically, read back only after every checksum agrees.

A checkpoint is a directory holding `config.json` (class, hyper-parameters, library and format
version), `tokenizer.json`, the model's state (`weights.safetensors` for neural models, one
`.npy` file per table for n-gram models), and `manifest.json`: the sha256 and size of every
other file, config.json included. Nothing in it is pickled, so loading a checkpoint never runs
code. A new checkpoint is assembled in a temporary sibling folder (`.NAME.tmp-PID-HEX`) and
swapped into place, so a crash or Ctrl-C never leaves a half-written one where a good one stood.

The state also records which config it belongs to: the sha256 of config.json is written into
the metadata of each `.safetensors` file of the folder (`CONFIG_DIGEST_KEY`) or, for a folder
without one (n-gram tables: a `.npy` header holds numpy's three keys only), into a 32-byte
array `config_sha256.npy`. So an edit of config.json that keeps the weights' shapes (n_head 2 ->
4, smoothing -> witten-bell) is refused even when manifest.json is updated to match it.

Reading checks everything before anything is built: every manifest entry is a plain relative
name inside the folder (no `..`, no absolute path, no symlink anywhere on the way), every size
and checksum agrees, each safetensors header and each `.npy` header describes exactly the bytes
that follow it (a truncated file whose checksum was updated is refused by name), every JSON file
parses, and the state records this config.json.

A file's content is given as bytes, or as the path of a finished file (an n-gram table of many
gigabytes), which is hard-linked into the checkpoint when over LINK_BYTES and the file system
allows (the checkpoint and the model it came from then share it, as a loaded model shares its
checkpoint's files), and copied by the kernel otherwise; either way it is hashed in blocks,
never held in memory. `.npy` files are handed back on reading as paths, to be memory-mapped,
and are checked in a way whose cost does not grow with their size:

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

Replacing a checkpoint swaps the finished folder with the old one in one rename
(renameat2's RENAME_EXCHANGE, Linux), so a model is loadable at the path at every moment; where
the file system cannot exchange, the old folder is renamed aside (`.retired-NAME.PID`) first, and
the next command that reads or writes the path puts it back if the process died in between
(`tidy_folder`). Temporaries carry their writer's pid, so a command removes those of dead
processes beside what it writes. A write that fails for want of space names the path it was
writing. Checkpoints of format version 1 (the manifest inside config.json, no record of the
config in the state) still load.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import struct
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import CheckpointError, DiskFullError

FORMAT = "langmodels-checkpoint"
FORMAT_VERSION = 2  # 2: manifest.json covers config.json, the state records the config's sha256
READABLE_VERSIONS = (1, 2)  # 1: the manifest inside config.json (read, never written)
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
CONFIG_DIGEST_KEY = "langmodels.config_sha256"  # in a safetensors file's __metadata__
CONFIG_DIGEST_FILE = "config_sha256.npy"  # the record of a folder whose state has no safetensors file
SAFETENSORS_SUFFIX = ".safetensors"
MAPPED_SUFFIX = ".npy"  # files handed back by read_checkpoint as paths, to be memory-mapped
FULL_CHECK_BYTES = 2**20  # mapped files up to this size have their whole sha256 checked on load
SAMPLE_BLOCKS = 64  # a larger one: the sha256 of 64 blocks of 8 KiB spread over it (512 KiB read)
SAMPLE_BYTES = 8 * 2**10
LINK_BYTES = 64 * 2**20  # a finished file larger than this is hard-linked into a checkpoint, not copied
HASH_BLOCK = 8 * 2**20
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class CheckpointNote(UserWarning):
    """A note about a checkpoint folder (one put back after an interrupted replacement)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (resolved path, size, mtime_ns) -> sha256: a mixture checksums its components' files for their
# own config.json and again for its own; a file is read once.
_DIGESTS: dict[tuple, str] = {}


def _digest_key(path: Path) -> tuple:
    stat_ = path.stat()
    return (str(path.resolve()), stat_.st_size, stat_.st_mtime_ns)


def remember_sha256(path, digest: str) -> None:
    """Record the sha256 of a file this process has just written, computed from the bytes as
    they were written, so that file_sha256 (saving it into a checkpoint) need not read it again
    while its size and mtime stay as they are."""
    _DIGESTS[_digest_key(Path(path))] = digest


def file_sha256(path: Path, *, cached: bool = True) -> str:
    """sha256 hex of a file, read in blocks (hashlib releases the GIL: files hash in parallel).
    cached: reuse the digest of a file this process hashed (or wrote: remember_sha256) with the
    same size and mtime (when writing; a check on reading never trusts it, since damage on disk
    leaves the mtime alone)."""
    key = _digest_key(path)
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


def _sampled_digest(read, size: int) -> str:
    """sha256 of the sampled blocks, read(offset, length) giving each."""
    digest = hashlib.sha256()
    length = SAMPLE_BYTES if size > SAMPLE_BLOCKS * SAMPLE_BYTES else size
    for offset in sample_offsets(size):
        digest.update(read(offset, length))
    return digest.hexdigest()


def sample_sha256(path: Path, size: int) -> str:
    """sha256 of the sampled blocks of a file (SAMPLE_BLOCKS * SAMPLE_BYTES read whatever its size)."""
    with open(path, "rb") as handle:
        return _sampled_digest(lambda offset, length: os.pread(handle.fileno(), length, offset), size)


def _is_bytes(content) -> bool:
    return isinstance(content, (bytes, bytearray, memoryview))


def _content_size(content) -> int:
    return len(content) if _is_bytes(content) else Path(content).stat().st_size


def _digest(content) -> str:
    return sha256_hex(bytes(content)) if _is_bytes(content) else file_sha256(Path(content))


def _is_mapped(name: str) -> bool:
    return name.endswith(MAPPED_SUFFIX)


def is_checkpoint(path: Path) -> bool:
    """True when `path` holds a config.json written by this library (intact or not)."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ---- names inside a checkpoint ----------------------------------------------------------------


def check_name(name, where) -> str:
    """A manifest entry: a relative name of plain parts ("weights.safetensors", "component-0/
    keys_1.npy"), never absolute, never `..`, `.` or empty, never a backslash or NUL."""
    if (not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise CheckpointError(f"{where} lists {name!r}, which is not a plain file name inside the checkpoint "
                              "(edited?)")
    return name


def _open_inside(folder: Path, name: str):
    """A binary file object for `name` inside `folder`, opened without following a symlink at any
    step below the folder, and only if it is a regular file."""
    where = folder / name
    parts = name.split("/")
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise CheckpointError(f"no checkpoint folder at {folder}") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        handle = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {where} is missing") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise CheckpointError(f"checkpoint file {where} is a symbolic link or lies behind one; a checkpoint "
                                  "holds its own files") from None
        raise CheckpointError(f"cannot read checkpoint file {where}: {error.strerror}") from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise CheckpointError(f"checkpoint file {where} is not a regular file")
    return os.fdopen(handle, "rb")


# ---- writing ----------------------------------------------------------------------------------


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # out of space, out of quota


def named_error(error: OSError, path) -> OSError:
    """`error` naming `path` where it names no file (write() on a full disk: `[Errno 28] No space
    left on device`), as a DiskFullError (a LangmodelsError: one line, exit 2) where space or
    quota ran out; other errors are returned as they are."""
    filename = str(path) if error.filename is None else error.filename
    if error.errno in FULL_DISK and not isinstance(error, DiskFullError):
        return DiskFullError(error.errno, error.strerror or os.strerror(error.errno), filename)
    if error.filename is None:
        return OSError(error.errno, error.strerror or str(error), filename)
    return error


@contextlib.contextmanager
def naming(path):
    """An OSError raised inside is raised again by `named_error`: naming `path`, the thing being
    written, where it names nothing, and as DiskFullError when the disk is full."""
    try:
        yield
    except OSError as error:
        named = named_error(error, path)
        if named is error:
            raise
        raise named from None


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _write_file(path: Path, data) -> None:
    """Write bytes, or bring in a finished file: a file over LINK_BYTES is hard-linked (instant,
    no copy) where source and checkpoint share a file system, so it is shared with its source as
    a memory-mapped model shares its checkpoint's; other files are copied by the kernel
    (sendfile), never via memory."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a name may hold a subfolder (a mixture's components)
    if not _is_bytes(data):
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


def temporary_name(path: Path) -> Path:
    """The temporary sibling a file or folder is written as before it is renamed to `path`:
    `.NAME.tmp-PID-HEX`, the pid telling `tidy_folder` whether its writer still runs."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike):
    """Write `path` atomically: yields the temporary sibling to write (`temporary_name`), after
    removing the temporaries of `path` that dead processes left (`tidy_folder`); renamed over
    `path` when the block ends, removed if it fails; an OSError names `path` (`naming`)."""
    path = Path(path)
    temporary = new_temporary(path)
    try:
        with naming(path):
            yield temporary
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def new_temporary(path: Path) -> Path:
    """A temporary name for a new `path` (`temporary_name`), after removing the temporaries of
    `path` that dead processes left (`tidy_folder`)."""
    tidy_folder(path.parent, path.name)
    return temporary_name(path)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write one file as a temporary sibling, then rename it over `path` (`replacing`).

    open(..., "x") rather than mkstemp, so the file gets the usual permissions (umask).
    """
    with replacing(path) as temporary, open(temporary, "xb") as handle:
        handle.write(data)
    return Path(path)


def staging_folder(target: Path) -> Path:
    """A new, empty temporary sibling folder for `target` (ordinary permissions), after tidying
    what earlier writers of `target` left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tidy_folder(target.parent, target.name)
    staging = temporary_name(target)
    with naming(staging):
        staging.mkdir()
    return staging


def write_checkpoint(path: str | os.PathLike, config: dict, files: dict[str, bytes | os.PathLike]) -> Path:
    """Write `files`, `config.json` and `manifest.json` as the folder `path`, atomically.
    A name with a slash ("component-0/weights.safetensors") is written in that subfolder. A value
    is the file's bytes or the path of a finished file to bring in (linked or copied)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tidy_folder(target.parent, target.name)  # an interrupted replacement put back first
    if target.exists():
        if not target.is_dir():
            raise CheckpointError(f"cannot save to {target}: it exists and is not a folder")
        if any(target.iterdir()) and not is_checkpoint(target):
            raise CheckpointError(f"refusing to overwrite {target}: it is not empty and not a langmodels checkpoint")
    for name in files:
        check_name(name, "the model's state")
    staging = staging_folder(target)
    try:
        with naming(target):
            contents = {**files, CONFIG_FILE: config_json(config)}
            contents = bind_state(contents)
            for name, data in contents.items():
                _write_file(staging / name, data)
            _write_file(staging / MANIFEST_FILE, manifest_json(contents))
            replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def config_json(config: dict) -> bytes:
    """The bytes of a config.json: `config` (class, params, fitted facts) with the format."""
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    return json.dumps(full, indent=2, sort_keys=True).encode("utf-8")


def manifest_json(files: dict[str, bytes | os.PathLike]) -> bytes:
    """The manifest.json of a checkpoint holding `files`: every file's sha256 and size, and the
    sampled digest of each mapped file too large to hash on every load."""
    names = list(files)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # big files hash side by side
        digests = list(pool.map(lambda name: _digest(files[name]), names))
    sizes = {name: _content_size(files[name]) for name in names}
    samples = {}
    for name in names:
        if _is_mapped(name) and sizes[name] > FULL_CHECK_BYTES:
            data = files[name]
            if _is_bytes(data):  # a large mapped file given as bytes is sampled from the bytes themselves
                view = memoryview(data)
                samples[name] = _sampled_digest(lambda offset, length, view=view: view[offset : offset + length],
                                                len(view))
            else:
                samples[name] = sample_sha256(Path(data), sizes[name])
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": dict(zip(names, digests)),
                "sizes": sizes}
    if samples:
        manifest["samples"] = samples
    return json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")


# ---- the state's record of its config ----------------------------------------------------------


def _config_folders(files: dict) -> list[str]:
    """The folders ("" for the top, "component-0/" ...) holding a config.json of this library
    (a mixture's components have their own; a transformers config.json under hf/ is not one)."""
    folders = []
    for name, data in files.items():
        if name == CONFIG_FILE or name.endswith("/" + CONFIG_FILE):
            try:
                ours = json.loads(bytes(data) if _is_bytes(data) else Path(data).read_bytes()).get("format") == FORMAT
            except (ValueError, AttributeError, OSError):
                ours = False
            if ours:
                folders.append(name[: -len(CONFIG_FILE)])
    return folders


def _direct_children(files, folder: str, suffix: str) -> list[str]:
    return [name for name in files if name.startswith(folder) and "/" not in name[len(folder):]
            and name.endswith(suffix)]


def bind_state(files: dict) -> dict:
    """`files` with each config.json's sha256 recorded in the state beside it: in the metadata of
    every safetensors file of its folder, or in CONFIG_DIGEST_FILE when the folder has none."""
    files = dict(files)
    for folder in _config_folders(files):
        config = files[folder + CONFIG_FILE]
        digest = _digest(config)
        tensors = _direct_children(files, folder, SAFETENSORS_SUFFIX)
        for name in tensors:
            data = files[name] if _is_bytes(files[name]) else Path(files[name]).read_bytes()
            files[name] = with_safetensors_metadata(bytes(data), {CONFIG_DIGEST_KEY: digest}, name)
        if not tensors:
            buffer = io.BytesIO()
            np.save(buffer, np.frombuffer(bytes.fromhex(digest), dtype=np.uint8), allow_pickle=False)
            files[folder + CONFIG_DIGEST_FILE] = buffer.getvalue()
    return files


def safetensors_header(data: bytes, where) -> dict:
    """The JSON header of a safetensors file, after checking it describes exactly the bytes after
    it (each tensor's offsets inside the data, the data ending with the last tensor)."""
    damaged = f"{where} is not a whole safetensors file (truncated or edited)"
    if len(data) < 8:
        raise CheckpointError(damaged)
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise CheckpointError(damaged)
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(damaged) from None
    if not isinstance(header, dict):
        raise CheckpointError(damaged)
    body = len(data) - 8 - length
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= body):
            raise CheckpointError(damaged)
        end = max(end, offsets[1])
    if end != body:
        raise CheckpointError(damaged)
    return header


def with_safetensors_metadata(data: bytes, metadata: dict[str, str], where) -> bytes:
    """A safetensors file with `metadata` added to its header's __metadata__ (the tensors' offsets
    count from the end of the header, so the data is kept as it is)."""
    header = safetensors_header(data, where)
    (length,) = struct.unpack("<Q", data[:8])
    header["__metadata__"] = {**(header.get("__metadata__") or {}), **metadata}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def _check_npy(handle, size: int, where: Path) -> None:
    """A .npy file's header describes exactly the bytes after it (read from its first bytes)."""
    try:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = read_header[version](handle)  # numpy's own parser (np.save writes 1.0)
        expected = handle.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (ValueError, OSError, TypeError, SyntaxError, OverflowError, KeyError):
        raise CheckpointError(f"{where} is not a whole .npy file (truncated or edited)") from None
    if dtype.hasobject or expected != size:
        raise CheckpointError(f"{where} is not a whole .npy file (truncated or edited)")


def _check_contents(name: str, data: bytes, where: Path) -> None:
    """A file read as bytes parses as what its name says (cheap: its checksum already matched)."""
    if name.endswith(SAFETENSORS_SUFFIX):
        safetensors_header(data, where)
    elif name.endswith(".json"):
        try:
            json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError(f"{where} is not valid JSON (truncated or edited)") from None
    elif name.endswith(".npz"):  # the n-gram tables of an earlier layout
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if archive.testzip() is not None:
                    raise zipfile.BadZipFile
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            raise CheckpointError(f"{where} is not a whole .npz file (truncated or edited)") from None


def _check_bound(folder: Path, files: dict) -> None:
    """Each config.json of the checkpoint is the one its state was saved with."""
    for inside in _config_folders(files):
        digest = sha256_hex(files[inside + CONFIG_FILE])
        config_path = folder / (inside + CONFIG_FILE)
        tensors = _direct_children(files, inside, SAFETENSORS_SUFFIX)
        for name in tensors:
            metadata = safetensors_header(files[name], folder / name).get("__metadata__") or {}
            if metadata.get(CONFIG_DIGEST_KEY) != digest:
                raise CheckpointError(f"{config_path} is not the config {folder / name} was saved with "
                                      "(edited?); re-train or re-save the model")
        if not tensors:
            record = files.get(inside + CONFIG_DIGEST_FILE)
            recorded = np.load(record, allow_pickle=False) if record is not None else None
            if recorded is None or recorded.dtype != np.uint8 or recorded.tobytes().hex() != digest:
                raise CheckpointError(f"{config_path} is not the config the state in {folder / inside or folder} "
                                      "was saved with (edited?); re-train or re-save the model")


# ---- reading ----------------------------------------------------------------------------------


def _read_json_file(folder: Path, name: str) -> tuple[bytes, dict]:
    with _open_inside(folder, name) as handle:
        data = handle.read()
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{folder / name} is not valid JSON (truncated or edited)") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise CheckpointError(f"{folder / name} is not a langmodels checkpoint {name[:-5]}")
    return data, value


def read_manifest(path: str | os.PathLike) -> tuple[dict, bytes, dict]:
    """(config, config.json's bytes, manifest) of a checkpoint folder, format and version checked;
    the manifest's names checked to be plain names inside the folder. Nothing else is read."""
    folder = Path(path)
    if not folder.exists():
        tidy_folder(folder.parent, folder.name)  # put back a replacement cut short by a crash
    if not folder.is_dir():
        if folder.exists():
            raise CheckpointError(f"{folder} is a file, not a checkpoint folder")
        raise CheckpointError(f"no checkpoint folder at {folder}")
    if not os.path.lexists(folder / CONFIG_FILE):
        raise CheckpointError(f"{folder} is not a checkpoint: {CONFIG_FILE} is missing")
    config_bytes, config = _read_json_file(folder, CONFIG_FILE)
    version = config.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{folder} has checkpoint format version {version!r}; this langmodels reads "
                              f"versions {', '.join(map(str, READABLE_VERSIONS))}: load it with the langmodels that "
                              "wrote it, or re-train it")
    if version == 1:
        manifest, where = config, folder / CONFIG_FILE
    else:
        _, manifest = _read_json_file(folder, MANIFEST_FILE)
        where = folder / MANIFEST_FILE
        if manifest.get("format_version") != version:
            raise CheckpointError(f"{where} and {CONFIG_FILE} have different format versions (edited?)")
    files, sizes, samples = (manifest.get(key, {} if key == "samples" else None)
                             for key in ("files", "sizes", "samples"))
    if not isinstance(files, dict) or (version > 1 and not isinstance(sizes, dict)):
        raise CheckpointError(f"{where} lists no files (edited?)")
    sizes = sizes or {}
    if not isinstance(samples, dict):
        raise CheckpointError(f"{where} has malformed sizes or samples (edited?)")
    for name, digest in files.items():
        check_name(name, where)
        if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
            raise CheckpointError(f"{where} has no sha256 for {name!r} (edited?)")
        size = sizes.get(name, 0 if version == 1 else None)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckpointError(f"{where} has no size for {name!r} (edited?)")
    if version > 1 and files.get(CONFIG_FILE) != sha256_hex(config_bytes):
        raise CheckpointError(f"{folder / CONFIG_FILE} does not match its checksum in {MANIFEST_FILE} (edited?)")
    return config, config_bytes, {"files": files, "sizes": sizes, "samples": samples, "version": version}


def read_checkpoint(path: str | os.PathLike, *, deep: bool = False) -> tuple[dict, dict[str, bytes | Path]]:
    """Return (config, files) after checking format, version, every file's checksum, the structure
    of each state file and that the state was saved with this config.json (module notes).

    A `.npy` file comes back as its Path, to be memory-mapped: checked by size and, when larger
    than FULL_CHECK_BYTES, by its sampled digest only (see the module's notes), unless `deep`.
    Every other file comes back as bytes, its whole sha256 checked."""
    folder = Path(path)
    config, config_bytes, manifest = read_manifest(folder)
    files = {}
    for name, digest in manifest["files"].items():
        if name == CONFIG_FILE:
            files[name] = config_bytes
            continue
        with _open_inside(folder, name) as handle:
            files[name] = _checked_file(handle, folder / name, name, digest, manifest, deep)
    if manifest["version"] > 1:
        _check_bound(folder, files)
        files = {name: data for name, data in files.items() if name.rsplit("/", 1)[-1] != CONFIG_DIGEST_FILE}
    files.pop(CONFIG_FILE, None)
    for key in ("files", "sizes", "samples"):  # a format-1 config.json holds its manifest
        config.pop(key, None)
    return config, files


def _checked_file(handle, where: Path, name: str, digest: str, manifest: dict, deep: bool):
    """A file's bytes, or a mapped file's path, after the checks its size allows (module notes)."""
    damaged = f"checkpoint file {where} does not match its checksum (truncated or edited)"
    actual = os.fstat(handle.fileno()).st_size
    size = manifest["sizes"].get(name)
    if size is not None and actual != size:
        raise CheckpointError(f"checkpoint file {where} has {actual} bytes, its checkpoint says {size} (truncated?)")
    if not _is_mapped(name):
        data = handle.read()
        if sha256_hex(data) != digest:
            raise CheckpointError(damaged)
        _check_contents(name, data, where)
        return data
    sample = manifest["samples"].get(name)
    if deep or actual <= FULL_CHECK_BYTES or sample is None:
        if file_sha256(where, cached=False) != digest:  # a regular file, no symlink on the way: just checked
            raise CheckpointError(damaged)
    elif _sampled_digest(lambda offset, length: os.pread(handle.fileno(), length, offset), actual) != sample:
        raise CheckpointError(damaged)
    handle.seek(0)
    _check_npy(handle, actual, where)
    return where


def verify_checkpoint(path: str | os.PathLike) -> dict:
    """Hash every file of a checkpoint whole (the deep check); its manifest (files, sizes), or
    CheckpointError."""
    read_checkpoint(path, deep=True)
    return read_manifest(path)[2]


# ---- replacing a folder, and what a crash leaves behind ---------------------------------------------


RETIRED = ".retired-"  # prefix of a replaced folder between the two renames of replace_folder
AT_FDCWD = -100
RENAME_EXCHANGE = 2
# What writers of this library leave beside NAME while they work, each with its writer's pid:
# `.NAME.tmp-PID-HEX` (write_atomic, staging_folder), `.retired-NAME.PID` (replace_folder), and
# the names of the version before: `.NAME.PID.HEX.tmp` (write_atomic) and `.NAME.tmp-XXXXXXXX`
# (mkdtemp: no pid; no process of this version writes one, so it is always stale).
TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}"
                       r"|\.(?P<old_name>.+)\.(?P<old_pid>\d+)\.[0-9a-f]{8}\.tmp"
                       r"|\.(?P<mkdtemp_name>.+)\.tmp-[a-z0-9_]{8}")
RETIRED_NAME = re.compile(re.escape(RETIRED) + r"(?P<name>.+)\.(?P<pid>\d+)")


def _exchange(staging: Path, target: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the C library
    or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(staging), AT_FDCWD, os.fsencode(target), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def replace_folder(staging: Path, target: Path) -> None:
    """Move a finished folder into place. An existing target is exchanged with it in one step,
    then deleted; where that cannot be done, it is renamed aside (RETIRED + name + .pid) first,
    and `tidy_folder` puts it back if the process dies before the second rename."""
    if target.exists() and _exchange(staging, target):
        _fsync_folder(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # the old folder, now under the temporary name
        return
    if target.exists():
        retired = target.with_name(f"{RETIRED}{target.name}.{os.getpid()}")
        os.replace(target, retired)
        os.replace(staging, target)
        _fsync_folder(target.parent)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)
        _fsync_folder(target.parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def tidy_folder(folder: str | os.PathLike, name: str | None = None, *, exclusive: bool = False) -> None:
    """Clean up after crashed writers in `folder` (of `name` only, if given): a folder replaced
    when its writer died between the two renames is put back (or dropped, if the new one got
    in), and temporaries of dead processes are removed. Those of live processes are left alone,
    unless `exclusive`: the caller holds a lock no other writer of the folder can (the bench's)."""
    def stale(pid) -> bool:
        return exclusive or pid is None or not _alive(int(pid))

    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        retired = RETIRED_NAME.fullmatch(entry.name)
        if retired and (name is None or retired["name"] == name):
            if not stale(retired["pid"]):
                continue
            final = folder / retired["name"]
            if final.exists():
                _remove(Path(entry.path))
            else:
                os.replace(entry.path, final)
                warnings.warn(f"{final} was being replaced when its writer stopped; the model it held is put back",
                              CheckpointNote)
            continue
        temporary = TEMPORARY.fullmatch(entry.name)
        if temporary is None:
            continue
        owner = temporary["name"] or temporary["old_name"] or temporary["mkdtemp_name"]
        pid = temporary["pid"] or temporary["old_pid"]
        if (name is None or owner == name) and stale(pid):
            _remove(Path(entry.path))
