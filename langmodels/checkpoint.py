"""Checkpoint folders: written atomically, read back only after every checksum agrees.

A checkpoint is a directory holding `config.json` (class, hyper-parameters, library and format
version, and the sha256 of every other file), `tokenizer.json`, and the model's state
(`weights.safetensors` for neural models, `weights.npz` for n-gram tables). Nothing in it is
pickled, so loading a checkpoint never runs code. A new checkpoint is assembled in a temporary
sibling folder and renamed into place, so a crash or Ctrl-C never leaves a half-written one where a
good one stood.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .errors import CheckpointError

FORMAT = "langmodels-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_checkpoint(path: Path) -> bool:
    """True when `path` holds a config.json written by this library (intact or not)."""
    try:
        return json.loads((path / CONFIG_FILE).read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # a name may hold a subfolder (a mixture's components)
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


def write_checkpoint(path: str | os.PathLike, config: dict, files: dict[str, bytes]) -> Path:
    """Write `files` and `config.json` (with their checksums) as the folder `path`, atomically.
    A name with a slash ("component-0/weights.safetensors") is written in that subfolder."""
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


def config_json(config: dict, files: dict[str, bytes]) -> bytes:
    """The config.json of a checkpoint holding `files`: `config`, the format, and every file's sha256."""
    manifest = {name: sha256_hex(data) for name, data in files.items()}
    full_config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config, "files": manifest}
    return json.dumps(full_config, indent=2, sort_keys=True).encode("utf-8")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, bytes]]:
    """Return (config, files) after checking format, version and every file's checksum."""
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
    files = {}
    for name, digest in manifest.items():
        try:
            data = (folder / name).read_bytes()
        except OSError:
            raise CheckpointError(f"checkpoint file {folder / name} is missing") from None
        if sha256_hex(data) != digest:
            raise CheckpointError(f"checkpoint file {folder / name} does not match its checksum (truncated or edited)")
        files[name] = data
    return config, files


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
