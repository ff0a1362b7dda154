"""Fine-tuning a fitted neural model on a second corpus: it lowers the perplexity there, keeps the
pretrained tokenizer and architecture, starts a fresh optimiser and curve, and never touches the
pretrained model or its checkpoint. A tiny LSTM learns Brown's news and is moved to its fiction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import langmodels
from langmodels import NGramLM, cli, corpora
from langmodels.base import LangmodelsWarning
from langmodels.corpora import Split
from langmodels.errors import ConfigError, LangmodelsError
from langmodels.neural.gpt import GPTLM
from langmodels.neural.lstm import LSTMLM

pytestmark = pytest.mark.filterwarnings("ignore:fine-tuning keeps:langmodels.base.LangmodelsWarning")

TINY = {"n_embd": 32, "hidden": 32, "n_layer": 1, "dropout": 0.0, "batch_size": 32, "lr": 2e-2, "warmup_steps": 10,
        "eval_every": 1000, "threads": 1}


def brown_slice(lines, name):
    return Split(lines, name=name, corpus="brown", level="word", mode="lines")


@pytest.fixture(scope="module")
def news_and_fiction():
    """Brown's train split opens with press reportage; its test split is fiction and humour."""
    brown = corpora.load("brown")
    return (brown_slice(brown.train[:1500], "train"),
            brown_slice(brown.test[:1500], "train"), brown_slice(brown.test[-300:], "valid"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, news_and_fiction):
    """A tiny LSTM fitted on news, saved; returns its checkpoint folder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = LSTMLM(**TINY).fit(news_and_fiction[0], max_steps=100, progress=False)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("finetune") / "news"
    model.save(folder)
    return folder


def folder_bytes(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def test_finetuning_lowers_perplexity_on_the_new_corpus(pretrained, news_and_fiction):
    _, fiction, fiction_valid = news_and_fiction
    before = langmodels.load(pretrained).evaluate(fiction_valid).perplexity
    with pytest.warns(LangmodelsWarning, match="read as <unk>"):  # fiction has words news never used
        tuned = LSTMLM(lr=5e-3).fit(fiction, resume_from=pretrained, max_steps=20, progress=False)
    after = tuned.evaluate(fiction_valid).perplexity
    assert after < 0.9 * before, (before, after)
    assert tuned.config.lr == 5e-3 and tuned.config.hidden == 32  # its training setting, the pretrained shape
    assert [point["step"] for point in tuned.curve_] == [20]  # a fresh curve: the fine-tuning run's own
    assert tuned.finetuned_from_ == str(pretrained)


def test_the_pretrained_checkpoint_and_model_are_untouched(pretrained, news_and_fiction):
    fiction = news_and_fiction[1]
    on_disk = folder_bytes(pretrained)
    original = langmodels.load(pretrained)
    weights = {name: tensor.clone() for name, tensor in original.module_.state_dict().items()}
    tuned = LSTMLM().fit(fiction, resume_from=original, max_steps=10, progress=False)
    assert folder_bytes(pretrained) == on_disk
    assert all(torch.equal(weights[name], tensor) for name, tensor in original.module_.state_dict().items())
    assert tuned.module_ is not original.module_
    with pytest.raises(LangmodelsError, match="pretrained model's folder"):
        LSTMLM().fit(fiction, resume_from=pretrained, checkpoint=pretrained, max_steps=1, progress=False)
    assert folder_bytes(pretrained) == on_disk


def test_the_tokenizer_is_kept(pretrained, news_and_fiction):
    _, fiction, _ = news_and_fiction
    original = langmodels.load(pretrained)
    tuned = LSTMLM().fit(fiction, resume_from=pretrained, max_steps=5, progress=False)
    assert tuned.tokenizer.to_dict() == original.tokenizer.to_dict()
    unseen = next(word for line in fiction for word in line.split() if word not in original.tokenizer.vocab)
    assert tuned.tokenizer.encode(unseen) == [tuned.tokenizer.vocab.unk_id]


def test_a_model_fine_tunes_itself(pretrained, news_and_fiction):
    _, fiction, fiction_valid = news_and_fiction
    model = langmodels.load(pretrained)
    before = model.evaluate(fiction_valid).perplexity
    assert model.fit(fiction, resume_from=model, max_steps=10, progress=False) is model
    assert model.evaluate(fiction_valid).perplexity < before
    assert model.config == langmodels.load(pretrained).config


def test_settings_that_shape_the_model_cannot_change(pretrained, news_and_fiction):
    _, fiction, _ = news_and_fiction
    with pytest.raises(ConfigError, match="hidden=64 differs from the pretrained model's 32"):
        LSTMLM(hidden=64).fit(fiction, resume_from=pretrained, max_steps=1, progress=False)


def test_a_checkpoint_that_is_not_neural_is_refused(news_and_fiction, pretrained, tmp_path):
    news, fiction, _ = news_and_fiction
    NGramLM(order=2).fit(news).save(tmp_path / "bigram")
    with pytest.raises(LangmodelsError, match="not a neural model; only neural models can be fine-tuned"):
        LSTMLM().fit(fiction, resume_from=tmp_path / "bigram", max_steps=1)
    with pytest.raises(LangmodelsError, match="holds a LSTMLM, which cannot be fine-tuned as a GPTLM"):
        GPTLM().fit(fiction, resume_from=pretrained, max_steps=1)
    with pytest.raises(LangmodelsError, match="no checkpoint folder"):
        LSTMLM().fit(fiction, resume_from=tmp_path / "missing", max_steps=1)


# ---- the command line ------------------------------------------------------------------------------


def run(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_finetune_on_the_command_line(capsys, pretrained, news_and_fiction, tmp_path):
    _, fiction, fiction_valid = news_and_fiction
    corpus_file = tmp_path / "fiction.txt"
    corpus_file.write_text(fiction.text() + fiction_valid.text(), encoding="utf-8")
    on_disk = folder_bytes(pretrained)
    code, out, err = run(capsys, "finetune", pretrained, "--corpus", corpus_file, "--out", tmp_path / "tuned",
                         "--max-seconds", "0.5", "--set", "lr=0.005")
    assert code == 0, err
    assert re.search(r"valid perplexity [\d.]+ before, [\d.]+ after \(lines mode\)", out), out
    tuned = langmodels.load(tmp_path / "tuned")
    assert tuned.config.lr == 0.005 and tuned.metrics_["perplexity"] > 0
    assert tuned.tokenizer.to_dict() == langmodels.load(pretrained).tokenizer.to_dict()
    assert folder_bytes(pretrained) == on_disk


def test_finetune_mistakes_are_one_line_errors(capsys, pretrained, news_and_fiction, tmp_path):
    NGramLM(order=2).fit(news_and_fiction[0]).save(tmp_path / "bigram")
    for argv, fragment in (
        (["finetune", tmp_path / "bigram", "--corpus", "brown", "--out", tmp_path / "x"], "not a neural model"),
        (["finetune", pretrained, "--corpus", "brown", "--out", pretrained], "is the pretrained checkpoint"),
        (["finetune", pretrained, "--corpus", "brown", "--out", tmp_path / "x", "--set", "n_embd=64"],
         "--set n_embd: fine-tuning keeps the pretrained architecture"),
        (["finetune", pretrained, "--corpus", "brown", "--out", tmp_path / "x", "--set", "nonsense=1"],
         "unknown --set key"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err
