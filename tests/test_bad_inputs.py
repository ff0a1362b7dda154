"""Every out-of-range or ill-typed option and argument is refused up front in one line (issue 15,
items 1 and 6): on the command line `langmodels: error: ...` and exit 2 with nothing written, in
Python a LangmodelsError subclass with the same message; a neural model too large for the machine
is refused from its settings, with the estimate, before anything is built."""

import json
import math
import time
import warnings
from pathlib import Path

import pytest
import torch
from cli_checks import TOY, assert_one_line_error, run, write_corpus

from langmodels import InterpolatedLM, LanguageModel, NGramLM, corpora, inside, options
from langmodels.bench import load_config, run_benchmark
from langmodels.errors import ConfigError, CorpusError, InputError, LangmodelsError
from langmodels.families import build_model, model_class_named
from langmodels.neural.gpt import GPTLM
from langmodels.neural.memory import GIB, check_fits_memory, estimate

TINY_GPT = {"n_layer": 1, "n_head": 2, "n_embd": 8, "context": 8, "batch_size": 2, "threads": 1}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-inputs")


@pytest.fixture(scope="module")
def small(work):
    return write_corpus(work / "small.txt", lines=60)


@pytest.fixture(scope="module")
def bigram(work, small):
    out = work / "bigram"
    assert run_quietly(["train", "bigram", "--corpus", small, "--out", out]) == 0
    return out


def run_quietly(argv):
    from langmodels import cli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cli.main([str(arg) for arg in argv])


@pytest.fixture(scope="module")
def ngram():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NGramLM(order=2).fit(TOY * 3)


@pytest.fixture(scope="module")
def gpt():
    return GPTLM(**TINY_GPT).fit(TOY * 3, max_steps=1)


# ---- the command line: one line, exit 2, nothing written -------------------------------------------

TRAIN = ["train", "{model}", "--corpus", "{small}", "--out", "{out}"]
HUGE = "99999999999999999999999"

# (id, model, extra arguments, fragments the error line holds)
TRAIN_CASES = [
    ("order huge", "ngram", ["--set", "order=1000000000"], ["order", "from 1 to 32", "1000000000"]),
    ("order 0", "ngram", ["--set", "order=0"], ["order", "from 1 to 32"]),
    ("order 2.5", "ngram", ["--set", "order=2.5"], ["order", "whole number"]),
    ("mlp order 1", "mlp", ["--set", "order=1"], ["order", "from 2 to 32"]),
    ("n_layer huge", "gpt", ["--set", "n_layer=100000"], ["n_layer", "from 1 to 1,024"]),
    ("n_layer 0", "lstm", ["--set", "n_layer=0"], ["n_layer", "from 1 to 1,024"]),
    ("n_embd too large for memory", "gpt", ["--set", "n_embd=100000000"],
     ["n_embd=100000000", "would need about", "GiB to train", "GiB memory available"]),
    ("n_layer too large for memory", "gpt", ["--set", "n_layer=200", "--set", "n_embd=8192"],
     ["n_layer=200", "GiB to train", "available"]),
    ("batch_size too large for memory", "lstm", ["--set", "batch_size=100000000"], ["batch_size=100000000", "GiB"]),
    ("n_embd beyond int64 shapes", "gpt", ["--set", "n_embd=1000000000000"], ["n_embd", "268,435,456"]),
    ("hidden 0", "mlp", ["--set", "hidden=0"], ["hidden", "from 1 to"]),
    ("n_head not dividing n_embd", "gpt", ["--set", "n_head=3"], ["n_embd (128) must be divisible by n_head (3)"]),
    ("context 0", "gpt", ["--set", "context=0"], ["context", "from 1 to"]),
    ("context huge", "gpt", ["--set", "context=1000000000"], ["context", "268,435,456"]),
    ("threads huge", "gpt", ["--set", "threads=10000"], ["threads", "processors", "10000"]),
    ("threads negative", "lstm", ["--set", "threads=-1"], ["threads"]),
    ("--seed huge", "gpt", ["--seed", HUGE], ["seed", "64 bits"]),
    ("--seed negative", "gpt", ["--seed", "-1"], ["seed", ">= 0"]),
    ("seed huge in --set", "mlp", ["--set", f"seed={HUGE}"], ["seed", "64 bits"]),
    ("--max-steps 2.5", "gpt", ["--max-steps", "2.5"], ["max-steps", "whole number >= 1", "2.5"]),
    ("--max-steps 0", "gpt", ["--max-steps", "0"], ["max-steps", ">= 1"]),
    ("--max-steps -1", "gpt", ["--max-steps", "-1"], ["max-steps"]),
    ("--max-tokens -5", "lstm", ["--max-tokens", "-5"], ["max-tokens", ">= 1"]),
    ("--max-seconds 0", "gpt", ["--max-seconds", "0"], ["max-seconds", "> 0"]),
    ("--max-seconds nan", "gpt", ["--max-seconds", "nan"], ["max-seconds", "nan"]),
    ("--max-seconds inf", "ngram", ["--max-seconds", "inf"], ["max-seconds", "inf"]),
    ("--checkpoint-every 0", "gpt", ["--checkpoint-every", "0"], ["checkpoint-every", ">= 1"]),
    ("lr nan", "gpt", ["--set", "lr=nan"], ["lr", "finite"]),
    ("lr 0", "gpt", ["--set", "lr=0"], ["lr", "(0, 1]"]),
    ("lr 1e308", "lstm", ["--set", "lr=1e308"], ["lr", "(0, 1]", "about lr"]),
    ("lr x weight_decay", "gpt", ["--set", "lr=0.5", "--set", "weight_decay=2"], ["lr x weight_decay must be < 1"]),
    ("dropout 1", "gpt", ["--set", "dropout=1"], ["dropout", "[0, 1)"]),
    ("dropout negative", "bert", ["--set", "dropout=-0.1"], ["dropout", "[0, 1)"]),
    ("batch_size 0", "mlp", ["--set", "batch_size=0"], ["batch_size", ">= 1"]),
    ("batch_size 2.5", "gpt", ["--set", "batch_size=2.5"], ["batch_size", "whole number"]),
    ("warmup_fraction 1", "gpt", ["--set", "warmup_fraction=1"], ["warmup_fraction", "[0, 1)"]),
    ("grad_clip 0", "lstm", ["--set", "grad_clip=0"], ["grad_clip", "> 0"]),
    ("bpe_vocab_size 0", "gpt", ["--set", "bpe_vocab_size=0"], ["bpe_vocab_size"]),
    ("mask_prob 1", "bert", ["--set", "mask_prob=1"], ["mask_prob", "(0, 1)"]),
    ("gibbs_sweeps huge", "bert", ["--set", "gibbs_sweeps=10000000"], ["gibbs_sweeps", "1,000,000"]),
    ("min_count 0", "ngram", ["--set", "min_count=0"], ["min_count", ">= 1"]),
    ("min_count maps every word to <unk>", "ngram", ["--set", "min_count=100000000"],
     ["min_count=100000000 maps every token of the training text to <unk>", "at most"]),
    ("min_count maps every word to <unk>, neural", "mlp", ["--set", "min_count=100000000", "--max-steps", "1"],
     ["min_count=100000000 maps every token", "<unk>"]),
    ("empty --corpus", "ngram", ["--corpus", ""], ["--corpus must not be empty"]),
    ("blank --corpus", "gpt", ["--corpus", "  "], ["--corpus must not be empty"]),
    ("empty --out", "ngram", ["--out", ""], ["--out must not be empty"]),
]


@pytest.mark.parametrize("case, model, extra, fragments", TRAIN_CASES, ids=[case[0] for case in TRAIN_CASES])
def test_train_refuses_a_bad_option_in_one_line_before_writing(capsys, tmp_path, small, case, model, extra,
                                                               fragments):
    argv = [arg.format(model=model, small=small, out=tmp_path / "out") for arg in TRAIN] + extra
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()
    assert not any(tmp_path.iterdir())  # no temporary folder either


OTHER_CASES = [
    ("generate --seed -1", ["generate", "{bigram}", "--seed", "-1"], ["seed", ">= 0"]),
    ("generate --seed 2**64", ["generate", "{bigram}", "--seed", str(2**64)], ["seed", "64 bits"]),
    ("generate --num 0", ["generate", "{bigram}", "--num", "0"], ["num", "from 1 to 1,000,000"]),
    ("generate --num 10**8", ["generate", "{bigram}", "--num", "100000000"], ["num", "mistyped"]),
    ("generate --temperature nan", ["generate", "{bigram}", "--temperature", "nan"], ["temperature", "nan"]),
    ("generate --temperature inf", ["generate", "{bigram}", "--temperature", "inf"], ["temperature", "inf"]),
    ("generate --temperature -1", ["generate", "{bigram}", "--temperature", "-1"], ["temperature", ">= 0"]),
    ("generate --top-k 0", ["generate", "{bigram}", "--top-k", "0"], ["top-k", ">= 1"]),
    ("generate --top-k 2.5", ["generate", "{bigram}", "--top-k", "2.5"], ["top-k", "whole number"]),
    ("generate --top-p 0", ["generate", "{bigram}", "--top-p", "0"], ["top-p", "(0, 1]"]),
    ("generate --top-p nan", ["generate", "{bigram}", "--top-p", "nan"], ["top-p"]),
    ("generate --max-tokens -1", ["generate", "{bigram}", "--max-tokens", "-1"], ["max-tokens"]),
    ("generate --max-tokens 10**7", ["generate", "{bigram}", "--max-tokens", "10000000"], ["max-tokens", "1,000,000"]),
    ("generate an empty checkpoint path", ["generate", ""], ["checkpoint folder must not be empty"]),
    ("samples --max-tokens 0", ["samples", "{bigram}", "--judge", "{bigram}", "--max-tokens", "0"], ["max-tokens"]),
    ("samples --temperature nan", ["samples", "{bigram}", "--judge", "{bigram}", "--temperature", "1", "nan"],
     ["temperature"]),
    ("complete -k 0", ["complete", "{bigram}", "the", "-k", "0"], ["k", ">= 1"]),
    ("complete -k 2.5", ["complete", "{bigram}", "the", "-k", "2.5"], ["k", "whole number"]),
    ("evaluate --lines 0", ["evaluate", "{bigram}", "--corpus", "{small}", "--lines", "0"], ["lines", ">= 1"]),
    ("evaluate empty --corpus", ["evaluate", "{bigram}", "--corpus", ""], ["--corpus must not be empty"]),
    ("compare empty --corpus", ["compare", "{bigram}", "--corpus", ""], ["--corpus must not be empty"]),
    ("graph --depth 0", ["graph", "{bigram}", "--word", "the", "--depth", "0", "--out", "{out}.png"], ["depth"]),
    ("temperature --temperatures nan", ["temperature", "{bigram}", "the", "--temperatures", "0.5,nan"],
     ["--temperatures", "nan"]),
    ("temperature --samples 10**7", ["temperature", "{bigram}", "the", "--samples", "10000000"], ["samples"]),
    ("embeddings --seed beyond 32 bits", ["embeddings", "{bigram}", "--words", "a,b", "--seed", str(2**32)],
     ["seed", "4,294,967,295"]),
    ("bench empty config", ["bench", "", "--out", "{out}"], ["benchmark config must not be empty"]),
    ("score an empty file name", ["score", "{bigram}", ""], ["text file must not be empty"]),
    ("finetune --max-seconds nan", ["finetune", "{bigram}", "--corpus", "{small}", "--out", "{out}",
                                    "--max-seconds", "nan"], ["max-seconds"]),
]


@pytest.mark.parametrize("case, argv, fragments", OTHER_CASES, ids=[case[0] for case in OTHER_CASES])
def test_every_command_refuses_a_bad_option_in_one_line(capsys, tmp_path, small, bigram, case, argv, fragments):
    names = {"small": small, "bigram": bigram, "out": tmp_path / "out"}
    code, out, err = run(capsys, *[arg.format(**names) for arg in argv])
    assert_one_line_error(code, err, *fragments)
    assert not out
    assert not any(tmp_path.iterdir())


def test_a_bench_config_with_a_seed_beyond_64_bits_is_refused_and_2_63_minus_1_is_taken(capsys, tmp_path):
    config = ('name = "seeds"\n[[corpus]]\nname = "shakespeare"\n[[model]]\nname = "mlp"\nkind = "mlp"\n'
              'budget = { max_steps = 1 }\nseeds = [SEED]\n')
    (tmp_path / "huge.toml").write_text(config.replace("SEED", HUGE), encoding="utf-8")
    code, _, err = run(capsys, "bench", tmp_path / "huge.toml", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "huge.toml", "seeds[0]: must be a whole number that fits in 64 bits")
    assert not (tmp_path / "out").exists()
    (tmp_path / "measure.toml").write_text(config.replace("SEED", "0") + f"[measure]\nsample_seeds = [{HUGE}]\n",
                                           encoding="utf-8")
    code, _, err = run(capsys, "bench", tmp_path / "measure.toml", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "measure.sample_seeds[0]: must be a whole number that fits in 64 bits")
    (tmp_path / "edge.toml").write_text(config.replace("SEED", str(2**63 - 1)), encoding="utf-8")
    assert [run.seed for run in load_config(tmp_path / "edge.toml").runs] == [2**63 - 1]


def test_the_largest_seed_trains_and_repeats_bit_for_bit():
    """The trainer derives a seed per step from the run's (seed x 1,000,003 + step, past 2**64 for
    this seed): reduced modulo 2**64, the largest seed trains, with dropout, the same way twice."""
    def weights():
        model = GPTLM(**{**TINY_GPT, "dropout": 0.5, "seed": options.SEED_MAX}).fit(TOY * 3, max_steps=3)
        return [p.detach().clone() for p in model.module_.parameters()]

    first, second = weights(), weights()
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in
                   zip(first, [p.detach() for p in GPTLM(**TINY_GPT).fit(TOY * 3, max_steps=3).module_.parameters()]))


def test_the_cli_and_python_say_the_same_thing(capsys, tmp_path, small):
    with pytest.raises(ConfigError) as caught:
        build_model(model_class_named("gpt"), {"n_layer": 100000})
    code, _, err = run(capsys, "train", "gpt", "--corpus", small, "--out", tmp_path / "out", "--set", "n_layer=100000")
    assert_one_line_error(code, err, str(caught.value))
    with pytest.raises(ConfigError) as caught:
        build_model(model_class_named("ngram"), {"order": 10**9})
    out = tmp_path / "out"
    code, _, err = run(capsys, "train", "ngram", "--corpus", small, "--out", out, "--set", f"order={10**9}")
    assert_one_line_error(code, err, str(caught.value))


# ---- Python: the error class and its one line ----------------------------------------------------------

# (id, call on the fitted models, error class, fragment)
PYTHON_CASES = [
    ("fit([1, 2, 3])", lambda m: type(m)(**params(m)).fit([1, 2, 3], **budget(m)), InputError, "line 0 is 1"),
    ("fit(None)", lambda m: type(m)(**params(m)).fit(None, **budget(m)), InputError, "got NoneType"),
    ("fit(one string)", lambda m: type(m)(**params(m)).fit("the cat", **budget(m)), InputError, "not one string"),
    ("fit(valid=[1])", lambda m: type(m)(**params(m)).fit(TOY, [1], **budget(m)), InputError, "valid"),
    ("fit(valid=[])", lambda m: type(m)(**params(m)).fit(TOY, [], **budget(m)), InputError, "valid text: the text has"),
    ("fit(max_steps=0)", lambda m: type(m)(**params(m)).fit(TOY, max_steps=0), ConfigError, "max_steps"),
    ("fit(max_steps=-1)", lambda m: type(m)(**params(m)).fit(TOY, max_steps=-1), ConfigError, "max_steps"),
    ("fit(max_steps=2.5)", lambda m: type(m)(**params(m)).fit(TOY, max_steps=2.5), ConfigError, "got 2.5"),
    ("fit(max_steps=True)", lambda m: type(m)(**params(m)).fit(TOY, max_steps=True), ConfigError, "got True"),
    ("fit(max_seconds=0)", lambda m: type(m)(**params(m)).fit(TOY, max_seconds=0), ConfigError, "max_seconds"),
    ("fit(max_seconds=nan)", lambda m: type(m)(**params(m)).fit(TOY, max_seconds=math.nan), ConfigError, "nan"),
    ("fit(max_seconds='1')", lambda m: type(m)(**params(m)).fit(TOY, max_seconds="1"), ConfigError, "'1'"),
    ("fit(max_tokens=-5)", lambda m: type(m)(**params(m)).fit(TOY, max_tokens=-5), ConfigError, "max_tokens"),
    ("generate(seed=-1)", lambda m: m.generate(seed=-1), ConfigError, "seed must be a whole number >= 0"),
    ("generate(seed=2**64)", lambda m: m.generate(seed=2**64), ConfigError, "64 bits"),
    ("generate(seed=2.5)", lambda m: m.generate(seed=2.5), ConfigError, "seed"),
    ("generate(123)", lambda m: m.generate(123), InputError, "prompt must be text"),
    ("generate(None)", lambda m: m.generate(None), InputError, "prompt must be text"),
    ("generate(num=0)", lambda m: m.generate(num=0), ConfigError, "num"),
    ("generate(max_tokens=2.5)", lambda m: m.generate("the", 2.5), ConfigError, "max_tokens"),
    ("generate(top_p=True)", lambda m: m.generate(top_p=True), ConfigError, "top-p"),
    ("generate(temperature=nan)", lambda m: m.generate(temperature=math.nan), ConfigError, "temperature"),
    ("evaluate([])", lambda m: m.evaluate([]), InputError, "no lines"),
    ("evaluate(None)", lambda m: m.evaluate(None), InputError, "evaluate"),
    ("evaluate([1, 2])", lambda m: m.evaluate([1, 2]), InputError, "line 0 is 1"),
    ("evaluate(one string)", lambda m: m.evaluate("the cat"), InputError, "not one string"),
    ("perplexity([])", lambda m: m.perplexity([]), InputError, "no lines"),
    ("perplexity(None)", lambda m: m.perplexity(None), InputError, "perplexity"),
    ("score(None)", lambda m: m.score(None), InputError, "score's word must be text"),
    ("score(3)", lambda m: m.score(3), InputError, "score's word"),
    ("score(word, 3)", lambda m: m.score("cat", 3), InputError, "context"),
    ("score(word, [1])", lambda m: m.score("cat", [1]), InputError, "context"),
    ("logscore(None)", lambda m: m.logscore(None), InputError, "logscore's word"),
    ("logprob(None)", lambda m: m.logprob(None), InputError, "logprob's line"),
    ("top_next(3)", lambda m: m.top_next(3), InputError, "context"),
    ("top_next(k=0)", lambda m: m.top_next("the", k=0), ConfigError, "k must be"),
    ("top_next(k=2.5)", lambda m: m.top_next("the", k=2.5), ConfigError, "k must be"),
    ("token_id(None)", lambda m: m.token_id(None), InputError, "token"),
    ("save(None)", lambda m: m.save(None), InputError, "save's folder"),
    ("save('')", lambda m: m.save(""), InputError, "save's folder"),
    ("load(None)", lambda m: type(m).load(None), InputError, "load's folder"),
    ("load('')", lambda m: type(m).load(""), InputError, "load's folder"),
]


def params(model):
    return {} if isinstance(model, NGramLM) else TINY_GPT


def budget(model):
    return {} if isinstance(model, NGramLM) else {"max_steps": 1}


@pytest.mark.parametrize("family", ["ngram", "gpt"])
@pytest.mark.parametrize("case, call, error, fragment", PYTHON_CASES, ids=[case[0] for case in PYTHON_CASES])
def test_a_bad_argument_raises_its_error_class_in_one_line(request, family, case, call, error, fragment):
    model = request.getfixturevalue(family)
    with pytest.raises(error) as caught:
        call(model)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert isinstance(caught.value, LangmodelsError)


def test_settings_are_refused_when_the_model_is_built_or_fitted():
    with pytest.raises(ConfigError, match="order must be a whole number from 1 to 32"):
        NGramLM(order=100000)
    with pytest.raises(ConfigError, match="seed must be a whole number that fits in 64 bits"):
        GPTLM(**{**TINY_GPT, "seed": 2**64}).fit(TOY, max_steps=1)
    with pytest.raises(ConfigError, match="maps every token of the training text to <unk>"):
        NGramLM(min_count=10**8).fit(TOY)
    with pytest.raises(CorpusError, match="got ''"):
        corpora.load("")


# ---- memory: estimated from the settings, refused before anything is built ----------------------------


def test_the_estimate_counts_exactly_the_parameters_the_model_builds():
    for kind, settings in [("gpt", {"n_layer": 2, "n_embd": 48}), ("bert", {"n_layer": 1}), ("lstm", {"hidden": 40}),
                           ("mlp", {"order": 4, "direct": True})]:
        model = build_model(model_class_named(kind), settings)
        built = sum(p.numel() for p in model.build_module(321).parameters())
        assert estimate(model, 321).parameters == built, kind
        assert estimate(model, 321).state_bytes == 16 * built  # weights, gradients, Adam's two moments


def test_a_model_that_fits_passes_and_one_that_does_not_is_refused_with_the_estimate():
    model = build_model(model_class_named("gpt"), TINY_GPT)
    needed = check_fits_memory(model, 100, available=GIB)  # a few hundred kB against 1 GiB
    assert 0 < needed.total < GIB
    with pytest.raises(ConfigError) as caught:
        check_fits_memory(model, 100, available=needed.total - 1)
    message = str(caught.value)
    assert "n_layer=1, n_embd=8" in message and "100 token types" in message and "\n" not in message
    assert f"more than the {(needed.total - 1) / GIB:,.1f} GiB" in message


def test_a_checkpoint_asking_for_a_huge_model_is_refused_before_it_is_built(gpt, tmp_path):
    """config.json edited to n_embd = 1,000,000 (and its checksum with it): refused from the
    settings in under a second, not after minutes in the allocator."""
    config, files = gpt.checkpoint_contents()
    config = json.loads(json.dumps(config))
    config["params"].update(n_embd=1_000_000, n_head=1)
    with pytest.raises(ConfigError, match=r"n_embd=1000000.*would need about [\d,.]+ GiB to load and score"):
        LanguageModel.from_checkpoint(config, files, where="edited")


def test_the_neural_extras_check_their_arguments_too(gpt):
    from langmodels.neural.bert import MaskedLM

    bert = MaskedLM(**TINY_GPT).fit(TOY * 3, max_steps=1)
    with pytest.raises(ConfigError, match="k must be a whole number >= 1, got 0"):
        bert.fill_mask("the [MASK] sat", k=0)
    with pytest.raises(InputError, match="fill_mask's text must be text"):
        bert.fill_mask(None)
    with pytest.raises(ConfigError, match="k must be a whole number >= 1, got -1"):
        gpt.embeddings().nearest("cat", k=-1)


# ---- Hugging Face models built in Python: the same table, the same line as the command line ------------

# (id, family, settings, fragment): HFCausalLM / HFMaskedLM keywords, typed as `--set` reads them.
HF_CASES = [
    ("lr -1", "hf", {"lr": -1.0}, "lr must be a number in (0, 1]"),
    ("lr 2", "hf", {"lr": 2.0}, "about lr"),
    ("lr x weight_decay", "hf", {"lr": 0.5, "weight_decay": 2.0}, "lr x weight_decay must be < 1"),
    ("weight_decay -1", "hf", {"weight_decay": -1.0}, "weight_decay must be a number >= 0"),
    ("seed -1", "hf", {"seed": -1}, "seed must be a whole number >= 0"),
    ("seed 2**64", "hf", {"seed": 2**64}, "64 bits"),
    ("warmup_steps -1", "hf", {"warmup_steps": -1}, "warmup_steps"),
    ("grad_clip 0", "hf", {"grad_clip": 0.0}, "grad_clip must be a number > 0"),
    ("patience -1", "hf", {"patience": -1}, "patience"),
    ("eval_every -1", "hf", {"eval_every": -1}, "eval_every"),
    ("context 1", "hf", {"context": 1}, "context must be a whole number from 2 to"),
    ("stride 0", "hf", {"stride": 0}, "stride must be a whole number >= 1"),
    ("masked seed -1", "hf-masked", {"seed": -1}, "seed must be a whole number >= 0"),
    ("masked lr 0", "hf-masked", {"lr": 0.0}, "lr must be a number in (0, 1]"),
]
HF_TEXT = ["the cat sat on the mat", "a dog ran after the cat", "the dog was brown"] * 4


@pytest.fixture(scope="module")
def hf_folders(work):
    """A tiny random GPT-2 and BERT with word-level tokenizers over HF_TEXT, saved locally (no network)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted({word for line in HF_TEXT for word in line.split()})
    folders = {}
    for family, specials in (("hf", ["<|endoftext|>"]), ("hf-masked", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])):
        vocab = {token: i for i, token in enumerate([*specials, *words])}
        backend = Tokenizer(models.WordLevel(vocab, unk_token=specials[-4] if len(specials) > 1 else specials[0]))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        torch.manual_seed(0)
        if family == "hf":
            tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                                             eos_token="<|endoftext|>", unk_token="<|endoftext|>")
            module = transformers.GPT2LMHeadModel(transformers.GPT2Config(
                vocab_size=len(vocab), n_positions=16, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0))
        else:
            tokenizer = transformers.PreTrainedTokenizerFast(
                tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                mask_token="[MASK]")
            module = transformers.BertForMaskedLM(transformers.BertConfig(
                vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                max_position_embeddings=16, pad_token_id=0))
        folder = work / family
        module.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[family] = str(folder)
    return folders


@pytest.mark.parametrize("case, family, settings, fragment", HF_CASES, ids=[case[0] for case in HF_CASES])
def test_a_hugging_face_model_built_in_python_refuses_a_bad_setting_as_the_command_line_does(
        capsys, tmp_path, small, hf_folders, case, family, settings, fragment):
    model_class = model_class_named(family)
    with pytest.raises(ConfigError) as direct:
        model_class(hf_folders[family], **settings).fit(HF_TEXT, max_steps=1)
    message = str(direct.value)
    assert fragment in message and "\n" not in message
    with pytest.raises(ConfigError) as built:  # build_model: the bench's path
        build_model(model_class, {"model": hf_folders[family], **settings})
    assert str(built.value) == message
    assert_one_line_error(*run(capsys, "train", family, "--corpus", small, "--out", tmp_path / "out",
                               "--set", f"model={hf_folders[family]}",
                               *[f"--set={key}={value}" for key, value in settings.items()])[::2], message)
    assert not any(tmp_path.iterdir())


def test_a_hugging_face_model_in_range_still_fine_tunes(hf_folders):
    """The range checks refuse only what is out of range: the edges of each range fine-tune."""
    from langmodels.hf import HFCausalLM

    model = HFCausalLM(hf_folders["hf"], lr=1.0, weight_decay=0.0, seed=options.SEED_MAX, batch_size=2, context=2,
                       stride=1, eval_every=0, patience=0, warmup_steps=0, batch_tokens=1)
    assert model.fit(HF_TEXT, max_steps=1).curve_


# ---- langmodels.inside called from Python: checked in the functions, by options.py's table ---------------

# (id, call on (n-gram model, gpt model), error class, fragment)
INSIDE_CASES = [
    ("successor_graph word=None", lambda n, g: inside.successor_graph(n, None), InputError, "start word must be text"),
    ("successor_graph word=3", lambda n, g: inside.successor_graph(n, 3), InputError, "start word must be text"),
    ("graph(max_contexts=0)", lambda n, g: n.graph(max_contexts=0), ConfigError, "max_contexts must be"),
    ("to_dot(max_contexts=-1)", lambda n, g: n.to_dot(max_contexts=-1), ConfigError, "max_contexts"),
    ("graph(max_contexts=2.5)", lambda n, g: n.graph(max_contexts=2.5), ConfigError, "max_contexts"),
    ("attention_maps(None text)", lambda n, g: inside.attention_maps(g, None), InputError, "text must be text"),
    ("attention_maps(3)", lambda n, g: inside.attention_maps(g, 3), InputError, "text must be text"),
    ("attention_maps(no model)", lambda n, g: inside.attention_maps(None, "the cat"), ConfigError, "no attention"),
    ("close_words(n=-1)", lambda n, g: inside.close_words("cat", n.tokenizer.vocab, n=-1), ConfigError, "n must be"),
    ("close_words(None)", lambda n, g: inside.close_words(None, n.tokenizer.vocab), InputError, "token must be text"),
    ("embedding_projection(seed=-1)", lambda n, g: inside.embedding_projection(g, ["cat", "dog"], seed=-1),
     ConfigError, "seed must be a whole number from 0 to 4,294,967,295"),
    ("embedding_projection(seed=2**32)", lambda n, g: inside.embedding_projection(g, ["cat", "dog"], seed=2**32),
     ConfigError, "4,294,967,295"),
    ("embedding_projection(tsne, seed=2.5)",
     lambda n, g: inside.embedding_projection(g, ["cat", "dog", "the"], method="tsne", seed=2.5), ConfigError, "seed"),
    ("embedding_projection(words=None)", lambda n, g: inside.embedding_projection(g, None), InputError,
     "words must be a list of words"),
    ("embedding_projection(one string)", lambda n, g: inside.embedding_projection(g, "cat dog"), InputError,
     "words must be a list of words"),
    ("embedding_projection([1, 2])", lambda n, g: inside.embedding_projection(g, [1, 2]), InputError, "entry 0 is 1"),
    ("analogy_accuracy(2 words)", lambda n, g: inside.analogy_accuracy(g, [("cat", "dog")]), InputError,
     "entry 0 must be 4 words"),
    ("analogy_accuracy([None])", lambda n, g: inside.analogy_accuracy(g, [None]), InputError, "entry 0"),
    ("analogy_accuracy(3)", lambda n, g: inside.analogy_accuracy(g, 3), InputError, "questions must be a list"),
    ("read_analogies(3)", lambda n, g: inside.read_analogies(3), InputError, "read_analogies' file"),
    ("next_token_distributions(temperatures=0.5)",
     lambda n, g: inside.next_token_distributions(n, "the", temperatures=0.5), ConfigError,
     "temperatures must be a list of numbers"),
    ("next_token_distributions(temperatures=None)",
     lambda n, g: inside.next_token_distributions(n, "the", temperatures=None), ConfigError, "temperatures"),
    ("next_token_distributions(model=None)", lambda n, g: inside.next_token_distributions(None, "the"),
     ConfigError, "model must be a fitted language model"),
    ("next_token_distributions(context=3)", lambda n, g: inside.next_token_distributions(n, 3), InputError,
     "context must be text"),
    ("temperature_samples(samples=10**7)", lambda n, g: inside.temperature_samples(n, "the", samples=10**7),
     ConfigError, "1,000,000"),
    ("temperature_samples(samples=0, seed=-1)", lambda n, g: inside.temperature_samples(n, "the", samples=0, seed=-1),
     ConfigError, "seed"),
    ("temperature_samples(seed + i beyond 64 bits)",
     lambda n, g: inside.temperature_samples(n, "the", seed=options.SEED_MAX, samples=2), ConfigError,
     "seed + samples - 1 must be at most"),
    ("temperature_samples(temperatures=[inf])",
     lambda n, g: inside.temperature_samples(g, "the", temperatures=[math.inf], samples=0), ConfigError, "inf"),
    ("temperature_samples(temperatures=[])", lambda n, g: inside.temperature_samples(n, "the", temperatures=[]),
     ConfigError, "at least one temperature"),
    ("temperature_samples(samples=0, max_tokens=-1)",
     lambda n, g: inside.temperature_samples(n, "the", samples=0, max_tokens=-1), ConfigError, "max_tokens"),
    ("temperature_samples(model=3)", lambda n, g: inside.temperature_samples(3, "the"), ConfigError, "model must be"),
]


def test_a_deep_graph_stops_when_no_new_state_is_reached(ngram):
    """depth is bounded by the states reached (at most MAX_NODES), not walked level by level:
    depth 10**9 with k = 1 returns at once, the same graph as the depth at which it stopped growing."""
    started = time.perf_counter()
    deep = inside.successor_graph(ngram, "the", depth=10**9, k=1)
    assert time.perf_counter() - started < 10  # level by level: about 40 s on this machine
    layers = max(layer for _, layer in deep.nodes(data="layer"))
    shallow = inside.successor_graph(ngram, "the", depth=layers + 1, k=1)
    assert sorted(deep.edges) == sorted(shallow.edges) and deep.number_of_nodes() == shallow.number_of_nodes()


# ---- the rest of the public API: each argument that reached numpy, torch or Python unchecked ------------

# (id, call on (n-gram model, gpt model), error class, fragment)
API_CASES = [
    ("Embeddings.nearest([])", lambda n, g: g.embeddings().nearest([]), InputError, "token must be text"),
    ("Embeddings.analogy(c=None)", lambda n, g: g.embeddings().analogy("the", "cat", None), InputError,
     "token must be text"),
    ("InterpolatedLM(None)", lambda n, g: InterpolatedLM(None), ConfigError, "models must be a list"),
    ("InterpolatedLM(3)", lambda n, g: InterpolatedLM(3), ConfigError, "models must be a list"),
    ("InterpolatedLM('ab')", lambda n, g: InterpolatedLM("ab"), ConfigError, "models must be a list"),
    ("InterpolatedLM([n, 'x']).evaluate", lambda n, g: InterpolatedLM([n, "x"]).evaluate(TOY), ConfigError,
     "component 2 is a str"),
    ("NGramLM(smoothing=[])", lambda n, g: NGramLM(smoothing=[]).fit(TOY), ConfigError, "unknown smoothing"),
    ("NGramLM(memory=nan)", lambda n, g: NGramLM(memory=float("nan")).fit(TOY), ConfigError,
     "memory must be a size"),
    ("NGramLM.to_arpa(None)", lambda n, g: n.to_arpa(None), InputError, "to_arpa's file"),
    ("NGramLM.to_dot(3)", lambda n, g: n.to_dot(3), InputError, "to_dot's file"),
    ("load_config(None)", lambda n, g: load_config(None), InputError, "benchmark config"),
    ("run_benchmark(config, None)", lambda n, g: run_benchmark(CONFIG_EXAMPLE, None), InputError, "report folder"),
    ("corpora.split_text(None)", lambda n, g: corpora.split_text(None), InputError, "split_text takes a list"),
    ("corpora.split_blocks('text')", lambda n, g: corpora.split_blocks("the cat"), InputError, "split_blocks"),
    ("corpora.split_sha256(3)", lambda n, g: corpora.split_sha256(3), InputError, "split_sha256"),
    ("corpora.split_named(None)", lambda n, g: corpora.split_named(None), InputError, "file name must be text"),
]
CONFIG_EXAMPLE = Path(__file__).resolve().parents[1] / "benchmarks" / "default.toml"


@pytest.mark.parametrize("case, call, error, fragment", INSIDE_CASES + API_CASES,
                         ids=[case[0] for case in INSIDE_CASES + API_CASES])
def test_an_inside_or_public_function_refuses_a_bad_argument_in_one_line(ngram, gpt, case, call, error, fragment):
    with pytest.raises(error) as caught:
        call(ngram, gpt)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
