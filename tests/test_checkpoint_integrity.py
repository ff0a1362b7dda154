"""A damaged, edited or hostile checkpoint folder is refused in one line before any model is built
(checkpoint.py): on the command line `langmodels: error: ...` and exit 2, in Python a
CheckpointError; and the folder is left exactly as it was."""

import hashlib
import io
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from cli_checks import TOY, assert_one_line_error, run, write_corpus

import langmodels
from langmodels import checkpoint as ckpt
from langmodels.errors import CheckpointError
from langmodels.neural.gpt import GPTLM
from langmodels.ngram import NGramLM

TINY_GPT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "context": 16, "batch_size": 4, "threads": 1, "eval_every": 1000}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One good checkpoint of each layout: n-gram tables (.npy) and neural weights (safetensors)."""
    folder = tmp_path_factory.mktemp("good")
    NGramLM(3, "kneser-ney").fit(TOY * 3).save(folder / "ngram")
    GPTLM(**TINY_GPT).fit(TOY * 3, max_steps=2, progress=False).save(folder / "gpt")
    write_corpus(folder / "small.txt", lines=60)
    return folder


def folder_bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else os.readlink(p))
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def record(folder: Path, name: str, data: bytes | None = None) -> None:
    """What a careful editor does after changing a file: put its sha256 and size in manifest.json."""
    data = (folder / name).read_bytes() if data is None else data
    listing = manifest(folder)
    listing["files"][name] = hashlib.sha256(data).hexdigest()
    listing["sizes"][name] = len(data)
    listing.get("samples", {}).pop(name, None)
    (folder / "manifest.json").write_text(json.dumps(listing))


def edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def edited_and_recorded(change):
    def damage(folder):
        edit_config(folder, change)
        record(folder, "config.json")
    return damage


def edited_only(folder):
    edit_config(folder, lambda c: c["params"].update({"order": 2} if "order" in c["params"] else {"n_head": 4}))


def entry_outside(name):
    def damage(folder):
        record(folder, name, Path("/etc/hostname").read_bytes() if name.endswith("hostname") else b"x")
    return damage


def symlinked_file(folder):
    outside = folder.parent / f"{folder.name}-outside.json"
    shutil.copyfile(folder / "metrics.json", outside)
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").symlink_to(outside)  # same bytes: only the link gives it away


def symlinked_folder(folder):
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir()
    (outside / "metrics.json").write_bytes((folder / "metrics.json").read_bytes())
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    record(folder, "elsewhere/metrics.json")


def truncated_and_recorded(folder):
    name = "weights.safetensors" if (folder / "weights.safetensors").exists() else "logprob_2.npy"
    data = (folder / name).read_bytes()[:-24]
    (folder / name).write_bytes(data)
    record(folder, name)


def record_removed(folder):
    """The state's record of its config taken away (config_sha256.npy, or the safetensors metadata)."""
    if (folder / "weights.safetensors").exists():
        data = (folder / "weights.safetensors").read_bytes()
        header = ckpt.safetensors_header(data, "weights")
        (length,) = struct.unpack("<Q", data[:8])
        header.pop("__metadata__")
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        (folder / "weights.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length:])
        record(folder, "weights.safetensors")
    else:
        (folder / "config_sha256.npy").unlink()
        listing = manifest(folder)
        del listing["files"]["config_sha256.npy"], listing["sizes"]["config_sha256.npy"]
        (folder / "manifest.json").write_text(json.dumps(listing))


def other_version(folder):
    edit_config(folder, lambda c: c.update(format_version=99))


def manifest_missing(folder):
    (folder / "manifest.json").unlink()


DAMAGES = {
    # the config edits of the issue, each keeping the weights' shapes, with manifest.json updated too
    "n_head 2 -> 4, manifest updated": ("gpt", edited_and_recorded(lambda c: c["params"].update(n_head=4)),
                                        "is not the config"),
    "smoothing -> witten-bell, manifest updated": ("ngram", edited_and_recorded(
        lambda c: c["params"].update(smoothing="witten-bell")), "is not the config"),
    "config edited, manifest not": ("ngram", edited_only, "config.json does not match its checksum"),
    "config edited, manifest not (gpt)": ("gpt", edited_only, "config.json does not match its checksum"),
    "entry ../../../../etc/hostname": ("ngram", entry_outside("../../../../etc/hostname"), "not a plain file name"),
    "entry /etc/hostname": ("gpt", entry_outside("/etc/hostname"), "not a plain file name"),
    "entry a/./b": ("ngram", entry_outside("a/./b"), "not a plain file name"),
    "a file that is a symlink": ("ngram", symlinked_file, "symbolic link"),
    "a folder that is a symlink": ("gpt", symlinked_folder, "symbolic link"),
    "weights truncated, checksum updated": ("gpt", truncated_and_recorded, "not a whole safetensors file"),
    "table truncated, checksum updated": ("ngram", truncated_and_recorded, "not a whole .npy file"),
    "record of the config removed (gpt)": ("gpt", record_removed, "is not the config"),
    "record of the config removed (ngram)": ("ngram", record_removed, "is not the config"),
    "another format version": ("ngram", other_version, "format version 99"),
    "manifest.json missing": ("gpt", manifest_missing, "manifest.json is missing"),
}


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_checkpoint_is_refused_in_one_line(kind, saved, tmp_path, capsys):
    family, damage, fragment = DAMAGES[kind]
    folder = tmp_path / family
    shutil.copytree(saved / family, folder)
    damage(folder)
    before = folder_bytes(folder)
    code, out, err = run(capsys, "evaluate", folder, "--corpus", saved / "small.txt")
    assert_one_line_error(code, err, fragment)
    assert out == ""
    with pytest.raises(CheckpointError, match=fragment.replace(".", r"\.")) as caught:
        langmodels.load(folder)
    assert "\n" not in str(caught.value)
    assert folder_bytes(folder) == before  # refusing changes nothing


@pytest.mark.parametrize("family", ["ngram", "gpt"])
def test_an_intact_checkpoint_loads_and_verifies(family, saved, capsys):
    """The control for the suite above: the same folders undamaged load, and `verify` passes."""
    model = langmodels.load(saved / family)
    assert np.isfinite(model.evaluate(TOY).nll)
    code, out, err = run(capsys, "verify", saved / family)
    assert code == 0 and out.startswith(f"{saved / family}: ok, ") and err == ""


def test_the_record_is_the_config_the_state_was_saved_with(saved):
    listing = manifest(saved / "gpt")
    digest = hashlib.sha256((saved / "gpt" / "config.json").read_bytes()).hexdigest()
    header = ckpt.safetensors_header((saved / "gpt" / "weights.safetensors").read_bytes(), "weights")
    assert header["__metadata__"][ckpt.CONFIG_DIGEST_KEY] == digest == listing["files"]["config.json"]
    recorded = np.load(saved / "ngram" / "config_sha256.npy")
    assert recorded.tobytes().hex() == hashlib.sha256((saved / "ngram" / "config.json").read_bytes()).hexdigest()


def test_an_edited_config_is_refused_where_it_would_change_the_scores(saved, tmp_path):
    """Why the record matters: the n_head edit loads without it (a format-1 checkpoint, whose
    checksums live in config.json) and scores differently from the model that was saved."""
    folder = tmp_path / "gpt"
    shutil.copytree(saved / "gpt", folder)
    config, _ = ckpt.read_checkpoint(folder)
    config["params"]["n_head"] = 4
    legacy_format(folder, config)
    edited = langmodels.load(folder)
    assert edited.evaluate(TOY).nll != pytest.approx(langmodels.load(saved / "gpt").evaluate(TOY).nll, rel=1e-6)


def legacy_format(folder: Path, config: dict) -> None:
    """Rewrite a checkpoint in the previous format: the manifest inside config.json, no record."""
    listing = manifest(folder)
    for name in ("config.json", "config_sha256.npy"):
        listing["files"].pop(name, None)
        listing["sizes"].pop(name, None)
    (folder / "manifest.json").unlink()
    (folder / "config_sha256.npy").unlink(missing_ok=True)
    old = {**config, "format_version": 1, "files": listing["files"], "sizes": listing["sizes"]}
    (folder / "config.json").write_text(json.dumps(old))


@pytest.mark.parametrize("family", ["ngram", "gpt"])
def test_a_checkpoint_of_the_previous_format_still_loads(family, saved, tmp_path):
    folder = tmp_path / family
    shutil.copytree(saved / family, folder)
    config, _ = ckpt.read_checkpoint(folder)
    legacy_format(folder, config)
    assert langmodels.load(folder).evaluate(TOY).nll == pytest.approx(langmodels.load(saved / family).evaluate(TOY).nll)
    (folder / "tokenizer.json").write_text("{}")  # and its checksums are still checked
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        langmodels.load(folder)


def test_an_arpa_file_is_read_wherever_a_checkpoint_is(saved, tmp_path, capsys):
    """An ARPA file stands for a checkpoint folder in every command that reads a model."""
    model = langmodels.load(saved / "ngram")
    arpa = tmp_path / "kn3.arpa"
    model.to_arpa(arpa)
    corpus = saved / "small.txt"
    code, out, _ = run(capsys, "evaluate", arpa, "--corpus", corpus, "--json")
    from_arpa = json.loads(out)
    code_folder, out_folder, _ = run(capsys, "evaluate", saved / "ngram", "--corpus", corpus, "--json")
    assert code == code_folder == 0
    assert from_arpa["nll"] == pytest.approx(json.loads(out_folder)["nll"], rel=1e-5)  # ARPA keeps 9 digits
    for argv in (["generate", arpa, "--seed", "1"], ["complete", arpa, "the"], ["score", arpa, corpus],
                 ["compare", saved / "ngram", arpa, "--corpus", corpus], ["verify", arpa],
                 ["graph", arpa, "--word", "the", "--out", tmp_path / "g.svg"]):
        code, out, err = run(capsys, *argv)
        assert code == 0 and out and "error" not in err, (argv, err)
    code, _, err = run(capsys, "export", arpa, "--format", "hf", "--out", tmp_path / "hf")
    assert_one_line_error(code, err, "only a gpt checkpoint")
    code, _, err = run(capsys, "evaluate", corpus, "--corpus", corpus)  # a file that is neither
    assert_one_line_error(code, err, "is a file, not a checkpoint folder", ".arpa")


def test_a_truncated_npz_of_the_previous_layout_is_refused_in_one_line(tmp_path):
    """The n-gram tables of the earliest layout (one weights.npz): a truncated archive whose
    checksum was updated is refused by name, not as a zipfile exception."""
    folder = tmp_path / "old"
    folder.mkdir()
    buffer = io.BytesIO()
    np.savez(buffer, keys_1=np.arange(1000), logprob_1=np.zeros(1000, dtype=np.float32))
    data = buffer.getvalue()[:-40]
    (folder / "weights.npz").write_bytes(data)
    config = {"format": ckpt.FORMAT, "format_version": 1, "class": "NGramLM", "params": {"order": 1},
              "files": {"weights.npz": hashlib.sha256(data).hexdigest()}, "sizes": {"weights.npz": len(data)}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"weights\.npz is not a whole \.npz file") as caught:
        langmodels.load(folder)
    assert "\n" not in str(caught.value)
