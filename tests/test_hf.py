"""Hugging Face models behind the contract, and our GPT exported to GPT-2's format (hf.py,
neural/hf_export.py). Everything is offline: tiny random GPT-2 and BERT models are built from
configs with tokenizers trained here, saved to a temporary folder and read back by path."""

import contextlib
import functools
import json
import math
import os
import sys

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
import torch  # noqa: E402

from langmodels import HFCausalLM, HFMaskedLM, LanguageModel, cli  # noqa: E402
from langmodels.errors import LangmodelsError  # noqa: E402
from langmodels.metrics import count_words  # noqa: E402

TEXT = [
    "the cat sat on the mat",
    "a dog ran after the cat",
    "the mat was red and the dog was brown",
    "naïve cafés serve crème brûlée",  # bytes != characters
    "she said that the cat and the dog were friends",
    "it rained all day in the town",
    "the <unk> sat on a <unk> and <s> ran",  # specials written in the text are text
] * 4


def byte_level_tokenizer(lines):
    """A GPT-2-style byte-level BPE trained on `lines`, with <|endoftext|> as BOS, EOS and unk."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def wordpiece_tokenizer(lines):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials,
                                                             show_progress=False))
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]")


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = byte_level_tokenizer(TEXT)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = wordpiece_tokenizer(TEXT)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=24,
                                     pad_token_id=tokenizer.pad_token_id)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def causal(gpt2_folder):
    return HFCausalLM(str(gpt2_folder), batch_tokens=96)


@pytest.fixture(scope="module")
def masked(bert_folder):
    return HFMaskedLM(str(bert_folder), batch_tokens=200)


@functools.cache
def reference_module(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


def reference_logprobs(folder, sequence):
    """log P(sequence[i] | sequence[:i]) from transformers directly: one forward pass, no batching."""
    with torch.no_grad():
        logits = reference_module(str(folder))(torch.tensor([list(sequence)])).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(sequence[1:])[:, None])[:, 0].numpy()


# ---- the contract every family passes ---------------------------------------------------------------


@pytest.mark.parametrize("family", ["causal", "masked"])
def test_next_token_distributions_sum_to_one(family, request):
    model = request.getfixturevalue(family)
    for context in ("", "the cat", "naïve"):
        logprobs = model.next_logprobs(model.encode_context(context))
        assert logprobs.shape == (len(model.tokenizer.vocab),)
        assert np.exp(logprobs).sum() == pytest.approx(1.0, abs=1e-6)


def test_score_ids_equals_next_logprobs_step_by_step_and_transformers_itself(causal, gpt2_folder):
    vocab = causal.tokenizer.vocab
    lines = [causal.tokenizer.encode(line) for line in TEXT[:5]]
    scored = causal.score_ids(lines)  # one batch, padded
    for ids, scores in zip(lines, scored):
        assert len(scores) == len(ids) + 1
        targets = [*ids, vocab.eos_id]
        stepwise = [causal.next_logprobs(ids[:k])[targets[k]] for k in range(len(targets))]
        np.testing.assert_allclose(scores, stepwise, atol=1e-5)
        np.testing.assert_allclose(scores, reference_logprobs(gpt2_folder, [vocab.bos_id, *targets]), atol=1e-5)
    # GPT-2's <|endoftext|> is BOS and EOS: the start of a line is the end token of the one before
    assert vocab.bos_id == vocab.eos_id == causal.tokenizer.hf.eos_token_id


def test_windows_equal_the_full_pass_when_the_text_fits_and_score_every_token_once(causal, gpt2_folder):
    ids = np.array(causal.tokenizer.encode(" ".join(TEXT[:2])))
    assert len(ids) + 1 <= causal.context_size
    np.testing.assert_allclose(causal.score_stream(ids), causal.score_ids([ids])[0][:-1], atol=1e-5)
    # A longer stream: windows of 32 advancing by 8; token t is predicted from the window that
    # first reaches it, i.e. from the last (t - begin) tokens before it.
    long = np.array(causal.tokenizer.encode("\n".join(TEXT[:8])))
    windowed = HFCausalLM(str(gpt2_folder), stride=8)
    scored = windowed.score_stream(long)
    assert scored.shape == (len(long),) and np.isfinite(scored).all()
    sequence = np.concatenate([[causal.tokenizer.vocab.bos_id], long])
    window, stride = 32, 8
    for t in range(1, len(sequence)):
        k = max(0, (t - window) // stride + 1)  # the first window [k stride, k stride + 32) that reaches t
        expected = reference_logprobs(gpt2_folder, sequence[k * stride : t + 1])[-1]
        assert scored[t - 1] == pytest.approx(expected, abs=1e-5), t


def test_evaluate_gives_every_normalisation_of_one_nll_and_bits_per_byte(causal):
    evaluation = causal.evaluate(TEXT)
    text = "\n".join(TEXT) + "\n"
    assert evaluation.n_bytes == len(text.encode("utf-8")) > evaluation.n_chars == len(text)
    assert evaluation.bits_per_byte == pytest.approx(evaluation.nll / (evaluation.n_bytes * math.log(2)))
    assert evaluation.bits_per_char == pytest.approx(evaluation.nll / (evaluation.n_chars * math.log(2)))
    assert evaluation.n_words == count_words(text)
    # lines mode: each line's tokens and its end token
    assert evaluation.n_tokens == sum(len(causal.tokenizer.encode(line)) + 1 for line in TEXT)
    total = sum(float(np.sum(s)) for s in causal.score_ids([causal.tokenizer.encode(line) for line in TEXT]))
    assert evaluation.nll == pytest.approx(-total, rel=1e-9)


def test_top_next_and_seeded_generation_use_our_sampler(causal):
    top = causal.top_next("the cat", k=3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    logprobs = causal.next_logprobs(causal.encode_context("the cat"))
    assert top[0] == (causal.tokenizer.token_text(int(np.argmax(logprobs))), pytest.approx(np.exp(logprobs.max())))
    one = causal.generate("the", 20, temperature=0.8, top_k=20, top_p=0.9, seed=3)
    assert one == causal.generate("the", 20, temperature=0.8, top_k=20, top_p=0.9, seed=3)
    assert one.startswith("the")
    # the key/value cache gives the distributions next_logprobs gives, also past the context
    steps = causal.next_logprobs_incremental(causal.encode_context("the"))
    sequence = causal.encode_context("the")
    first = next(steps)
    np.testing.assert_allclose(first, causal.next_logprobs(sequence), atol=1e-5)
    for token in [5, 17, 40] + [7] * 31:
        sequence.append(token)
        with pytest.warns(UserWarning) if len(sequence) + 1 == 33 else contextlib.nullcontext():
            got = steps.send(token)
        np.testing.assert_allclose(got, causal.next_logprobs(sequence), atol=1e-4)


# ---- the masked model ---------------------------------------------------------------------------------


def test_pseudo_log_likelihood_masks_each_token_in_turn(masked, bert_folder):
    module = transformers.AutoModelForMaskedLM.from_pretrained(bert_folder, local_files_only=True).eval()
    hf = masked.tokenizer.hf
    line = "the cat sat on the mat"
    ids = masked.tokenizer.encode(line)
    scores = masked.score_ids([ids, masked.tokenizer.encode("a dog ran")])[0]
    assert len(scores) == len(ids) + 1 and scores[-1] == 0.0  # the end of a line is given, not predicted
    for i in range(len(ids)):
        row = [hf.cls_token_id, *ids, hf.sep_token_id]
        row[i + 1] = hf.mask_token_id
        with torch.no_grad():
            logits = module(torch.tensor([row])).logits[0, i + 1].double()
        assert scores[i] == pytest.approx(torch.log_softmax(logits, -1)[ids[i]].item(), abs=1e-5)
    evaluation = masked.evaluate(TEXT[:6])
    assert evaluation.pseudo and masked.pseudo_perplexity(TEXT[:6]) == pytest.approx(evaluation.perplexity)
    # a stream longer than the context: each token masked in the window of context - 2 around it
    stream = np.array(masked.tokenizer.encode(" ".join(TEXT[:6])))
    room = masked.context_size - 2
    assert len(stream) > room
    scored = masked.score_stream(stream)
    for t in (0, 5, 11, 30, len(stream) - 1):
        begin = min(max(t - room // 2, 0), len(stream) - room)
        row = [hf.cls_token_id, *stream[begin : begin + room], hf.sep_token_id]
        row[t - begin + 1] = hf.mask_token_id
        with torch.no_grad():
            logits = module(torch.tensor([row])).logits[0, t - begin + 1].double()
        assert scored[t] == pytest.approx(torch.log_softmax(logits, -1)[stream[t]].item(), abs=1e-5)


def test_fill_mask_ranks_the_models_own_answers(masked, bert_folder):
    module = transformers.AutoModelForMaskedLM.from_pretrained(bert_folder, local_files_only=True).eval()
    hf = masked.tokenizer.hf
    answers = masked.fill_mask("the [MASK] sat on the <mask>", k=4)
    assert len(answers) == 2 and all(len(a) == 4 for a in answers)
    encoded = [hf.cls_token_id, *hf("the [MASK] sat on the [MASK]", add_special_tokens=False)["input_ids"],
               hf.sep_token_id]
    with torch.no_grad():
        probs = torch.softmax(module(torch.tensor([encoded])).logits[0].double(), -1)
    for answer, position in zip(answers, [i for i, t in enumerate(encoded) if t == hf.mask_token_id]):
        token, p = answer[0]
        assert token not in hf.all_special_tokens
        assert p == pytest.approx(probs[position, hf.convert_tokens_to_ids(token)].item(), rel=1e-5)
    with pytest.raises(LangmodelsError, match="no \\[MASK\\]"):
        masked.fill_mask("nothing to fill")


# ---- loading, saving, errors ----------------------------------------------------------------------------


def test_save_records_the_folder_and_load_reads_it_back(causal, tmp_path):
    causal.save(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    assert config["class"] == "HFCausalLM"
    assert manifest["files"].keys() == {"config.json", "metrics.json", "config_sha256.npy"}  # no weights of its own
    again = LanguageModel.load(tmp_path / "ckpt")
    assert type(again) is HFCausalLM
    ids = causal.tokenizer.encode("the cat")
    np.testing.assert_allclose(again.next_logprobs(ids), causal.next_logprobs(ids))


def test_hf_prefix_picks_the_family_from_the_config(gpt2_folder, bert_folder):
    assert type(LanguageModel.load(f"hf:{gpt2_folder}")) is HFCausalLM
    assert type(LanguageModel.load(f"hf:{bert_folder}")) is HFMaskedLM


def test_fine_tuning_through_our_trainer_lowers_the_loss_and_saves_the_weights(gpt2_folder, tmp_path):
    model = HFCausalLM(str(gpt2_folder), lr=3e-3, batch_size=4, eval_every=10)
    before = model.evaluate(TEXT).nll
    model.fit(TEXT, max_steps=20, progress=False)
    after = model.evaluate(TEXT).nll
    assert after < before and model.curve_[-1]["step"] == 20
    model.save(tmp_path / "tuned")
    assert (tmp_path / "tuned" / "hf" / "model.safetensors").is_file()
    again = LanguageModel.load(tmp_path / "tuned")
    assert again.evaluate(TEXT).nll == pytest.approx(after, rel=1e-6)
    # the hf/ folder inside is an ordinary transformers folder
    loaded = HFCausalLM(str(tmp_path / "tuned" / "hf"))
    assert loaded.evaluate(TEXT).nll == pytest.approx(after, rel=1e-6)


def test_masked_fine_tuning_batches_are_berts_masking(masked):
    """15 % of a row's text tokens chosen, of those 80 % [MASK], 10 % random, 10 % kept; the
    markers never chosen; attention off exactly on the padding."""
    from langmodels.neural.bert import step_generator
    from langmodels.neural.data import IGNORE

    hf = masked._check_fitted().hf
    data = masked._training_data(TEXT * 20, "lines")
    rows = full = chosen_total = masked_total = kept_total = 0
    for step in range(20):
        batch = data.sample(16, 0, step)
        got = masked._masked_batch(batch, False, step_generator(0, step))
        padded = torch.where(batch.targets == IGNORE, hf.pad_token_id, batch.targets)
        whole = torch.cat([batch.inputs[:, :1], padded], 1)  # [CLS] w1 .. wk [SEP] [PAD] ..
        text = (whole != hf.cls_token_id) & (whole != hf.sep_token_id) & (whole != hf.pad_token_id)
        chosen = got.targets != IGNORE
        assert not (chosen & ~text).any()  # [CLS], [SEP] and [PAD] never chosen
        assert torch.equal(got.targets[chosen], whole[chosen])  # the targets are the original tokens
        real = torch.cat([torch.ones_like(whole[:, :1]), batch.targets != IGNORE], 1)
        assert torch.equal(got.attention.bool(), real.bool())
        expected = torch.clamp(torch.round(text.sum(1) * 0.15), min=1)  # per row, as BERT rounds
        assert torch.equal(chosen.sum(1), expected.long())
        assert torch.equal(got.inputs[~chosen], whole[~chosen])  # the rest untouched
        rows += len(whole)
        chosen_total += int(chosen.sum())
        masked_total += int((got.inputs[chosen] == hf.mask_token_id).sum())
        kept_total += int((got.inputs[chosen] == whole[chosen]).sum())
        full += int(text.sum())
    assert chosen_total / full == pytest.approx(0.15, abs=0.03)
    assert masked_total / chosen_total == pytest.approx(0.8, abs=0.04)
    # kept: 10 %, plus the random draws that hit the token itself (1 in 120 of the other 10 %)
    assert kept_total / chosen_total == pytest.approx(0.1 + 0.1 / len(masked.tokenizer.vocab), abs=0.03)
    # a stream: windows of context - 2 of its tokens, each read as [CLS] window [SEP], as score_stream reads it
    stream = masked._training_data(TEXT, "stream")
    got = masked._training_batch(stream, 0)
    original = torch.where(got.targets == IGNORE, got.inputs, got.targets)
    assert original.shape == (masked.batch_size, masked.context_size) and bool(got.attention.all())
    assert (original[:, 0] == hf.cls_token_id).all() and (original[:, -1] == hf.sep_token_id).all()
    ids = stream.data[1:].tolist()
    for row in original[:, 1:-1].tolist():
        assert any(ids[i : i + len(row)] == row for i in range(len(ids)))  # a window of the stream


def masked_lm_loss(folder, lines, seed=7):
    """transformers' own masked-LM loss (BertForMaskedLM's labels) on `lines` read as [CLS] line [SEP],
    15 % of each line's tokens masked by seed: the loss on train that fine-tuning lowers."""
    module = transformers.AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    generator = torch.Generator().manual_seed(seed)
    total = count = 0.0
    for line in lines:
        ids = torch.tensor([tokenizer(line)["input_ids"]])
        labels = torch.full_like(ids, -100)
        chosen = torch.randperm(ids.size(1) - 2, generator=generator)[: max(1, round(0.15 * (ids.size(1) - 2)))] + 1
        labels[0, chosen] = ids[0, chosen]
        ids[0, chosen] = tokenizer.mask_token_id
        with torch.no_grad():
            total += module(input_ids=ids, labels=labels).loss.item() * len(chosen)
        count += len(chosen)
    return total / count


def test_fine_tuning_a_masked_model_lowers_its_loss_and_the_checkpoint_round_trips(bert_folder, tmp_path):
    model = HFMaskedLM(str(bert_folder), lr=3e-3, batch_size=8, eval_every=10)
    model.fit(TEXT, TEXT[:7], max_steps=30, progress=False)
    assert model.curve_[-1]["step"] == 30 and model.curve_[0]["valid_loss"] is not None
    model.save(tmp_path / "tuned")
    assert (tmp_path / "tuned" / "hf" / "model.safetensors").is_file()
    # transformers itself, on the folder inside the checkpoint, finds the masked-LM loss on train lower
    assert masked_lm_loss(str(tmp_path / "tuned" / "hf"), TEXT) < masked_lm_loss(str(bert_folder), TEXT)
    pll = model.evaluate(TEXT).nll
    assert pll < HFMaskedLM(str(bert_folder)).evaluate(TEXT).nll
    again = LanguageModel.load(tmp_path / "tuned")
    assert type(again) is HFMaskedLM and again.name.endswith("(fine-tuned)")
    assert again.evaluate(TEXT).nll == pytest.approx(pll, rel=1e-6)
    assert HFMaskedLM(str(tmp_path / "tuned" / "hf")).evaluate(TEXT).nll == pytest.approx(pll, rel=1e-6)
    published = HFMaskedLM(str(bert_folder))
    assert published.fit(TEXT) is published and published.finetuned_from_ is None  # no budget: as published


def test_train_hf_masked_from_the_command_line(bert_folder, tmp_path, capsys):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("\n".join(TEXT * 3) + "\n", encoding="utf-8")
    code = cli.main(["train", "hf-masked", "--corpus", str(corpus), "--out", str(tmp_path / "out"),
                     "--set", f"model={bert_folder}", "--set", "batch_size=4", "--max-steps", "3"])
    assert code == 0, capsys.readouterr().err
    assert "fine-tuned" in capsys.readouterr().out
    model = LanguageModel.load(tmp_path / "out")
    assert type(model) is HFMaskedLM
    assert model.finetuned_from_ == str(bert_folder) and (tmp_path / "out" / "hf" / "config.json").is_file()
    code = cli.main(["train", "hf-masked", "--corpus", str(corpus), "--out", str(tmp_path / "bad"),
                     "--set", f"model={bert_folder}", "--set", "mask_prob=1.5", "--max-steps", "3"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1 and "mask_prob must be in (0, 1)" in err


def test_a_missing_model_and_a_missing_extra_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(LangmodelsError) as missing:
        HFCausalLM(str(tmp_path / "nowhere")).next_logprobs([])
    assert str(missing.value) == f"{tmp_path / 'nowhere'}: no such model folder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(LangmodelsError) as empty:
        HFCausalLM(str(tmp_path / "empty")).next_logprobs([])
    assert "cannot load Hugging Face model" in str(empty.value) and "\n" not in str(empty.value)
    with pytest.raises(LangmodelsError, match="neither a local folder nor in the Hugging Face cache"):
        HFCausalLM("no-such-org/no-such-model-xyz").next_logprobs([])
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(LangmodelsError) as no_extra:
        HFCausalLM("gpt2").next_logprobs([])
    assert str(no_extra.value) == "Hugging Face models need the transformers package: pip install 'langmodels[hf]'"


def test_importing_the_classes_does_not_import_transformers():
    import subprocess

    code = ("import sys; from langmodels import HFCausalLM, HFMaskedLM; "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---- the command line and the harness -------------------------------------------------------------------


def test_cli_evaluate_an_hf_folder_prints_bits_per_byte(gpt2_folder, tmp_path, capsys):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("\n".join(TEXT * 3) + "\n", encoding="utf-8")
    assert cli.main(["evaluate", f"hf:{gpt2_folder}", "--corpus", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == f"hf:{gpt2_folder}"
    assert result["bits_per_byte"] == pytest.approx(result["nll"] / (result["n_bytes"] * math.log(2)))
    assert cli.main(["complete", f"hf:{gpt2_folder}", "the cat", "-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert cli.main(["generate", f"hf:{gpt2_folder}", "--prompt", "the", "--max-tokens", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the")
    code = cli.main(["evaluate", "hf:", "--corpus", str(corpus)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1 and "hf: needs a model name" in err


def test_cli_fill_mask_with_an_hf_bert(bert_folder, capsys):
    assert cli.main(["fill-mask", f"hf:{bert_folder}", "the [MASK] sat", "-k", "3"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 3 and all(row.startswith("1\t") for row in rows)


def test_a_bench_config_with_kind_hf_scores_the_published_model(gpt2_folder, tmp_path, capsys):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("\n".join(TEXT * 5) + "\n", encoding="utf-8")
    (tmp_path / "hf.toml").write_text(
        f'name = "hf"\n[[corpus]]\nname = "mine.txt"\nprompts = ["the"]\ncomplete = ["the cat"]\n'
        f'[[model]]\nname = "tiny-gpt2"\nkind = "hf"\nsettings = {{ model = "{gpt2_folder}" }}\n'
        f'[[model]]\nname = "bigram"\nkind = "bigram"\n'
        f'[measure]\nsamples_per_setting = 0\n', encoding="utf-8")  # the sample-quality sweep is not ours
    assert cli.main(["bench", str(tmp_path / "hf.toml"), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    runs = {run["model"]: run for run in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    from langmodels import corpora

    direct = HFCausalLM(str(gpt2_folder)).evaluate(corpora.load(str(corpus)).test)
    assert runs["tiny-gpt2"]["test"]["nll"] == pytest.approx(direct.nll, rel=1e-9)


# ---- our GPT exported to GPT-2's format ---------------------------------------------------------------


def tiny_gpt(**settings):
    from langmodels import GPTLM

    base = {"n_layer": 2, "n_head": 2, "n_embd": 16, "context": 24, "batch_size": 4, "eval_every": 1000, "lr": 3e-3,
            "dropout": 0.0}
    return GPTLM(**{**base, **settings}).fit(TEXT, max_steps=8, progress=False)  # biases move off zero


@pytest.mark.parametrize("settings", [{"tokenizer": "bpe", "bpe_vocab_size": 300}, {"tokenizer": "word", "bias": False},
                                      {"tokenizer": "char"}], ids=["bpe", "word-nobias", "char"])
def test_export_round_trip_gives_our_logits_and_log_probabilities(settings, tmp_path):
    ours = tiny_gpt(**settings)
    ours.save_hf(tmp_path / "gpt2")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "gpt2", local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "gpt2", local_files_only=True)
    assert type(theirs).__name__ == "GPT2LMHeadModel"
    vocab = ours.tokenizer.vocab
    never = ours.never_next()
    for line in TEXT[:7]:
        if settings["tokenizer"] == "char":
            line = line[:20]  # <s> + line + </s> fit the context of 24 characters
        ids = ours.tokenizer.encode(line)
        assert tokenizer(line)["input_ids"] == [vocab.bos_id, *ids]  # the same tokens, after <s>
        assert tokenizer.decode(ids) == (line if settings["tokenizer"] != "word" else " ".join(line.split()))
        ids = ids[: ours.config.context - 2]  # <s> + ids + </s> within the context
        sequence = torch.tensor([[vocab.bos_id, *ids, vocab.eos_id]])
        with torch.no_grad():
            their_logits = theirs(sequence).logits[0]
            our_logits = ours.module_(sequence)[0]
        torch.testing.assert_close(their_logits, our_logits, atol=1e-5, rtol=0)
        masked = their_logits.double().index_fill(-1, torch.tensor(never), -torch.inf)
        their_logprobs = torch.log_softmax(masked, -1)[:-1].gather(1, sequence[0, 1:, None])[:, 0].numpy()
        np.testing.assert_allclose(their_logprobs, ours.score_ids([ids])[0], atol=1e-5)
    generation = json.loads((tmp_path / "gpt2" / "generation_config.json").read_text())
    assert generation["suppress_tokens"] == sorted(never)


def test_export_from_the_command_line_and_through_hf_prefix(tmp_path, capsys):
    ours = tiny_gpt(tokenizer="bpe", bpe_vocab_size=300)
    ours.save(tmp_path / "ckpt")
    assert cli.main(["export", str(tmp_path / "ckpt"), "--format", "hf", "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    wrapped = LanguageModel.load(f"hf:{tmp_path / 'out'}")  # our GPT, read back through HFCausalLM
    ids = ours.tokenizer.encode(TEXT[0])
    full = wrapped.next_logprobs(ids)
    full[ours.never_next()] = -np.inf
    np.testing.assert_allclose(full - np.logaddexp.reduce(full), ours.next_logprobs(ids), atol=1e-5)


@pytest.mark.parametrize("settings, reason", [
    ({"softmax": "adaptive", "tokenizer": "word"}, "adaptive softmax"),
    ({"positions": "sinusoidal", "tokenizer": "word"}, "sinusoidal positions"),
])
def test_what_gpt2s_format_cannot_hold_is_refused_in_one_line(settings, reason, tmp_path, capsys):
    ours = tiny_gpt(**settings)
    with pytest.raises(LangmodelsError, match=reason):
        ours.save_hf(tmp_path / "x")
    ours.save(tmp_path / "ckpt")
    code = cli.main(["export", str(tmp_path / "ckpt"), "--format", "hf", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1 and reason in err
    assert not (tmp_path / "x").exists()


def test_an_nltk_word_tokenizer_and_a_non_gpt_checkpoint_are_refused(tmp_path, capsys):
    from langmodels import BigramLM
    from langmodels.tokenizers import WordTokenizer

    ours = tiny_gpt(tokenizer="word")
    ours.tokenizer = WordTokenizer(mode="nltk").fit(TEXT)
    with pytest.raises(LangmodelsError, match="splits with nltk"):
        ours.save_hf(tmp_path / "x")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "tokenizers", None)
        with pytest.raises(LangmodelsError, match=r"needs the tokenizers package: pip install 'langmodels\[hf\]'"):
            tiny_gpt(tokenizer="word").save_hf(tmp_path / "z")
    BigramLM().fit(TEXT).save(tmp_path / "bigram")
    code = cli.main(["export", str(tmp_path / "bigram"), "--format", "hf", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and "only a gpt checkpoint" in err


def test_a_bad_hf_setting_in_a_bench_config_is_one_line_before_any_work(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("\n".join(TEXT * 5) + "\n", encoding="utf-8")
    (tmp_path / "bad.toml").write_text('name = "bad"\n[[corpus]]\nname = "mine.txt"\n[[model]]\nname = "g"\n'
                                       'kind = "hf"\nsettings = { model = "gpt2", stride = 0 }\n', encoding="utf-8")
    code = cli.main(["bench", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1 and "stride must be a whole number >= 1" in err
    assert not (tmp_path / "out").exists()


def test_a_hub_name_is_read_from_the_hugging_face_cache_offline(gpt2_folder, tmp_path):
    import shutil
    import subprocess

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-gpt2"
    shutil.copytree(gpt2_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("from langmodels import LanguageModel; "
            f"m = LanguageModel.load('hf:tiny-org/tiny-gpt2'); print(type(m).__name__, m.evaluate({TEXT!r}).nll)")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    name, nll = out.split()
    assert name == "HFCausalLM"
    assert float(nll) == pytest.approx(HFCausalLM(str(gpt2_folder)).evaluate(TEXT).nll, rel=1e-9)
