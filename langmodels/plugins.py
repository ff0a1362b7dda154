"""Model classes named `package.module:Class` (a bench config's `kind`, `langmodels train`'s MODEL).

Naming a class runs its module's code, so a config that names one must be trusted like code.
These rules keep that code the code meant, and are all checked before anything is imported:

- the module is looked up (importlib's PathFinder) only in the folders a config lists under
  `plugins = [...]` and on sys.path without the current folder: `python -m` puts the folder a
  command is run from first on sys.path, and a file lying there is not an installed package
  (a sys.path entry named in PYTHONPATH is kept: the user put it there);
- a standard-library module is refused (`this:X` would print the Zen of Python on import);
- the module is imported with sys.path limited to those folders, and the class it holds must be
  a concrete LanguageModel subclass.

Each refusal is one ConfigError line.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from importlib.machinery import PathFinder
from pathlib import Path

from .base import LanguageModel
from .errors import ConfigError


def _resolved(entry: str) -> Path:
    return Path(entry or ".").resolve()


def installed_paths() -> list[str]:
    """sys.path without the current folder (unless PYTHONPATH names it)."""
    here = Path.cwd().resolve()
    named = {_resolved(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    return [entry for entry in sys.path if _resolved(entry) != here or _resolved(entry) in named]


@contextlib.contextmanager
def _search_path(paths: list[str]):
    saved = sys.path[:]
    sys.path[:] = paths
    try:
        yield
    finally:
        sys.path[:] = saved


def import_model_class(name: str, plugins: tuple[str | os.PathLike, ...] = ()) -> type[LanguageModel]:
    """The LanguageModel subclass `package.module:Class` names, imported under the rules above."""
    module_name, _, class_name = name.partition(":")
    if not (class_name.isidentifier() and all(part.isidentifier() for part in module_name.split("."))):
        raise ConfigError(f"model {name!r} is not of the form package.module:Class")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names:
        raise ConfigError(f"model {name!r} names the standard-library module {top!r}; a model class comes from "
                          "an installed package or a plugins folder")
    search = [str(Path(folder).resolve()) for folder in plugins] + installed_paths()
    spec = PathFinder.find_spec(top, search)
    if spec is None:
        where = "the config's plugins folders or the installed packages" if plugins else "the installed packages"
        raise ConfigError(f"model {name!r}: no module {top!r} in {where} (the current folder is not searched: "
                          "list a folder of your own under plugins = [...] in the bench config)")
    loaded = sys.modules.get(top)
    if loaded is not None and getattr(getattr(loaded, "__spec__", None), "origin", None) != spec.origin:
        raise ConfigError(f"model {name!r}: module {top!r} is already imported from "
                          f"{getattr(loaded, '__file__', None) or 'elsewhere'}, not {spec.origin}")
    with _search_path(search):  # the module's own imports see the same folders
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - the user's module failed: named in one line
            first = (str(error).strip().splitlines() or [""])[0]
            raise ConfigError(f"model {name!r}: importing {module_name} failed ({type(error).__name__}: {first})") \
                from None
    entry = getattr(module, class_name, None)
    if not (isinstance(entry, type) and issubclass(entry, LanguageModel)) or inspect.isabstract(entry):
        raise ConfigError(f"model {name!r} is not a LanguageModel class")
    return entry
