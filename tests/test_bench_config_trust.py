"""A bench config names Python classes (`kind = "module:Class"`), so it is code; plugins.py keeps
that code the code meant: a kind's module comes only from an installed package or a `plugins`
folder of the config, never from the current folder or the standard library, is looked up before
anything is imported, and must hold a LanguageModel subclass. Each refusal: one line, exit 2,
nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error, run, write_corpus

REPO = Path(__file__).resolve().parents[1]
RAN = "TOP-LEVEL CODE RAN"
MODEL = """
from langmodels.ngram import NGramLM


class PluginLM(NGramLM):
    '''A family of the user's own: a bigram under another name.'''

    def __init__(self, order: int = 2, smoothing: str = "kneser-ney"):
        super().__init__(order, smoothing)


class NotAModel:
    pass
"""


def config_text(kind: str, plugins: str | None = None) -> str:
    head = f"plugins = [{plugins!r}]\n" if plugins is not None else ""
    return (f'name = "trust"\n{head}[measure]\nsamples_per_setting = 0\n[[corpus]]\nname = "small.txt"\n'
            f'[[model]]\nname = "m"\nkind = "{kind}"\n')


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A folder to run from: a corpus, a module that announces itself when imported (as a file
    someone left in the current folder), and a plugins folder holding a real model module."""
    write_corpus(tmp_path / "small.txt", lines=60)
    (tmp_path / "cwd_model.py").write_text(f"print({RAN!r})\nfrom plugin_models import *\n" + MODEL)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "plugin_models.py").write_text(MODEL)
    (tmp_path / "plugins" / "broken_models.py").write_text("raise RuntimeError('the plugin fails on import')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` and `python script.py` put it there
    for name in ("cwd_model", "plugin_models", "broken_models"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


REFUSED = {
    "the Zen of Python": ("this:X", None, "standard-library module 'this'"),
    "os.system": ("os:system", "plugins", "standard-library module 'os'"),
    "a submodule of the standard library": ("json.decoder:JSONDecoder", None, "standard-library module 'json'"),
    "a module of the current folder": ("cwd_model:PluginLM", None, "the current folder is not searched"),
    "a plugin without plugins listed": ("plugin_models:PluginLM", None, "no module 'plugin_models'"),
    "not a LanguageModel": ("plugin_models:NotAModel", "plugins", "is not a LanguageModel class"),
    "no such class": ("plugin_models:Missing", "plugins", "is not a LanguageModel class"),
    "a plugin that fails on import": ("broken_models:X", "plugins", "RuntimeError: the plugin fails on import"),
    "not module:Class": ("plugin_models:Plugin LM", "plugins", "not of the form package.module:Class"),
    "a plugins folder that is not there": ("plugin_models:PluginLM", "nowhere", "no such folder"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_kind_from_an_untrusted_place_is_refused_before_import(case, folder, capsys):
    kind, plugins, fragment = REFUSED[case]
    (folder / "bench.toml").write_text(config_text(kind, plugins))
    code, out, err = run(capsys, "bench", "bench.toml", "--out", "out")
    assert_one_line_error(code, err, fragment)
    assert RAN not in out + err and "Beautiful is better than ugly" not in out + err  # nothing was imported
    assert "cwd_model" not in sys.modules and "this" not in sys.modules
    assert not (folder / "out").exists()


def test_a_kind_from_a_plugins_folder_runs(folder, capsys):
    (folder / "bench.toml").write_text(config_text("plugin_models:PluginLM", "plugins"))
    code, out, err = run(capsys, "bench", "bench.toml", "--out", "out")
    assert code == 0, err
    assert RAN not in out + err
    assert sys.modules["plugin_models"].__file__ == str(folder / "plugins" / "plugin_models.py")
    assert "m" in (folder / "out" / "results.csv").read_text()


def test_python_m_takes_the_current_folder_off_sys_path(folder):
    """Under `python -m langmodels` (which puts the current folder first on sys.path) a file there
    named like a module the command imports later, here the report's matplotlib, is not imported,
    and a chain of imports from a plugin cannot reach the current folder either."""
    (folder / "matplotlib.py").write_text(f"print({RAN!r})\n")
    (folder / "bench.toml").write_text(config_text("bigram"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "langmodels", "bench", "bench.toml"]
    done = subprocess.run([*command, "--out", "out"], cwd=folder, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and RAN not in done.stdout + done.stderr, done.stderr
    (folder / "bench.toml").write_text(config_text("plugin_models:PluginLM", "plugins"))
    (folder / "plugins" / "plugin_models.py").write_text("import cwd_model\n" + MODEL)
    done = subprocess.run([*command, "--out", "out2"], cwd=folder, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and RAN not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("langmodels: error: ") and "No module named 'cwd_model'" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
