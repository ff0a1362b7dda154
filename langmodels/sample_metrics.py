"""How good and how varied a model's samples are: the figures of issue 18, one function each.

A *sample* is what one seeded `generate` call from the start of a line gives, read as lines of
whitespace words (`sample_lines`): a word model's sample is one line (it stops at its end of
line, or is cut at max_tokens); a character model's sample spans lines, and its last line, cut off
mid-way, is left out unless it is the only one. Every figure is computed from those lines:

    distinct-n    Li et al. (2016, "A diversity-promoting objective function for neural
                  conversation models"): distinct n-grams / all n-grams of the samples. They
                  scale the distinct count by the number of generated tokens; dividing by the
                  n-grams instead (as the issue asks, and most later work does) keeps every
                  distinct-n in [0, 1]. n-grams stay inside a line.
    self-BLEU-4   Zhu et al. (2018, Texygen): each sample scored with BLEU-4 (Papineni
                  et al. 2002) against all the other samples as references, averaged; nltk's
                  sentence_bleu with uniform weights (1/4 each) and SmoothingFunction().method1
                  (Chen & Cherry 2014, method 1: a precision with no matches gets epsilon = 0.1
                  matches), the smoothing Texygen used. Higher is less diverse.
    repetition    the share of samples that end in a loop: their last k words are the same k
                  words three times in a row, for some k in 1..4 (`ends_in_loop`). Two copies are
                  not enough: 13 % of Brown's test lines end in a doubled '? ?' or '; ;' (its
                  quotes and punctuation), none in three copies of anything.
    Zipf          Holtzman et al. (2020, their Zipf analysis): minus the slope of the least-squares
                  line through (log rank, log frequency) of the samples' word types, over ranks
                  1 .. min(types, 5,000) (their top 5,000), every rank weighted alike.
    length        words per line: mean and population standard deviation.
    judge         word perplexity of the samples' lines under a judge model, exactly
                  `judge.evaluate(lines, mode=mode).word_perplexity`: exp(total NLL / (words + one
                  end-of-line per line)); Holtzman et al. (2020) compare the perplexity of
                  generated text with that of human text the same way.

`reference_samples` cuts the same number of "samples" out of a test text (a random line, or for a
character corpus the whole lines of a random window of max_tokens characters), so that the test
text gets the same figures as the models as the human reference.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections import Counter
from contextlib import contextmanager

import numpy as np

from .errors import ConfigError

SELF_BLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)  # BLEU-4, uniform weights
LOOP_MAX_PERIOD = 4  # a loop repeats its last 1..4 words ...
LOOP_COPIES = 3  # ... three times in a row
ZIPF_MAX_RANK = 5000  # Holtzman et al. (2020) fit the 5,000 most frequent words
# The default length of one sample in tokens, by the model's level: a Brown line has 22.5 words
# on average (a few percent run past 40); a Tiny Shakespeare line 25 characters, so 64 characters
# hold two or three whole lines and stay inside a 64-token transformer's context.
SAMPLE_MAX_TOKENS = {"word": 40, "char": 64, "subword": 64}
REFERENCE_SEED = 0  # which test lines the reference draws


# ---- turning samples into lines of words ------------------------------------------------------


def sample_lines(text: str, level: str) -> list[str]:
    """The lines of one generated sample (no prompt): a word sample is one line, its text up to
    the first newline (a subword model on a line corpus can spell a newline inside its line: what
    follows is not part of the line it was asked for); a character sample's lines up to its last
    newline (the cut-off tail is left out), or the text itself when it has no newline."""
    if level == "word":
        return [text.split("\n", 1)[0]]
    if "\n" not in text:
        return [text]
    return text[: text.rindex("\n")].split("\n")


@contextmanager
def one_torch_thread():
    """torch on one intra-op thread inside the block (when a neural model has loaded torch). A
    sample is drawn a token at a time, too little work to share: on a busy 2-core machine the
    Brown MLP took 32 ms a token on two threads that wait on each other and 0.63 ms on one. One
    thread also makes the drawn tokens the same whatever the machine's thread count."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def draw_samples(model, n: int, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 max_tokens: int | None = None, seed: int = 0) -> list[str]:
    """n samples from the start of a line, sample i with seed seed + i (as `langmodels generate
    --seed S --num N` draws them), on one torch thread; max_tokens defaults to SAMPLE_MAX_TOKENS
    of the model's level."""
    if max_tokens is None:
        max_tokens = SAMPLE_MAX_TOKENS.get(model.tokenizer.level, SAMPLE_MAX_TOKENS["word"])
    with one_torch_thread():
        return [model.generate("", max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed + i)
                for i in range(n)]


def reference_samples(test_lines, n: int, level: str, max_tokens: int, seed: int = REFERENCE_SEED) -> list[list[str]]:
    """n "samples" of a test text, cut as a model's would be: from n test lines drawn without
    replacement (numpy Generator(seed)), for words the line itself cut to max_tokens words; for
    characters the whole lines of the window of max_tokens characters starting there (the first
    line cut to max_tokens characters when it alone is longer). Fewer when the text has fewer lines."""
    lines = list(test_lines)
    starts = np.random.default_rng(seed).permutation(len(lines))[:n]
    samples = []
    for start in starts.tolist():
        if level == "word":
            samples.append([" ".join(lines[start].split()[:max_tokens])])
            continue
        window, used = [], 0
        for line in lines[start:]:
            if used + len(line) + 1 > max_tokens:  # this line and its newline do not fit
                break
            window.append(line)
            used += len(line) + 1
        samples.append(window or [lines[start][:max_tokens]])
    return samples


def _words(samples: list[list[str]]) -> list[list[list[str]]]:
    """Samples -> lines -> words."""
    return [[line.split() for line in sample] for sample in samples]


# ---- the figures --------------------------------------------------------------------------------


def distinct_n(lines_of_words: list[list[str]], n: int) -> float | None:
    """Li et al. (2016): |distinct n-grams| / |n-grams| over all lines (n-grams inside a line);
    None when no line has n words."""
    grams = [tuple(words[i : i + n]) for words in lines_of_words for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def self_bleu(samples_of_words: list[list[str]], weights=SELF_BLEU_WEIGHTS) -> float | None:
    """Zhu et al. (2018): the mean over samples of nltk's sentence_bleu(all other samples,
    sample), smoothing method 1. None for fewer than two samples (no references)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if len(samples_of_words) < 2:
        return None
    smoothing = SmoothingFunction().method1
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about empty hypotheses; their BLEU is 0
        for i, hypothesis in enumerate(samples_of_words):
            references = samples_of_words[:i] + samples_of_words[i + 1 :]
            scores.append(sentence_bleu(references, hypothesis, weights, smoothing_function=smoothing))
    return float(np.mean(scores))


def ends_in_loop(words: list[str], max_period: int = LOOP_MAX_PERIOD, copies: int = LOOP_COPIES) -> bool:
    """True when the words end in `copies` copies of one k-gram in a row, for some k in
    1..max_period ('... of the of the of the', '... no no no')."""
    for k in range(1, max_period + 1):
        if len(words) >= copies * k and all(words[-k:] == words[len(words) - (j + 1) * k : len(words) - j * k]
                                            for j in range(1, copies)):
            return True
    return False


def repetition(samples_of_words: list[list[str]], max_period: int = LOOP_MAX_PERIOD,
               copies: int = LOOP_COPIES) -> float | None:
    """The share of samples whose words end in a loop (`ends_in_loop`); None without samples."""
    if not samples_of_words:
        return None
    return sum(ends_in_loop(words, max_period, copies) for words in samples_of_words) / len(samples_of_words)


def zipf_coefficient(words: list[str], max_rank: int = ZIPF_MAX_RANK) -> float | None:
    """Holtzman et al. (2020): -slope of the least-squares line log f = a - s log r over the word
    types' ranks 1..min(types, max_rank); None with fewer than two types."""
    frequencies = np.sort(np.fromiter(Counter(words).values(), dtype=np.float64))[::-1][:max_rank]
    if frequencies.size < 2:
        return None
    ranks = np.arange(1, frequencies.size + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(frequencies), 1)
    return float(-slope)


def line_lengths(lines_of_words: list[list[str]]) -> tuple[float | None, float | None]:
    """Mean and population standard deviation of the words per line."""
    if not lines_of_words:
        return None, None
    lengths = np.array([len(words) for words in lines_of_words], dtype=np.float64)
    return float(lengths.mean()), float(lengths.std())


def judge_perplexity(judge, lines: list[str], mode: str) -> float | None:
    """The lines' word perplexity under the judge: its own `evaluate` (None when infinite)."""
    value = judge.evaluate(lines, mode=mode, progress=False).word_perplexity
    return value if math.isfinite(value) else None


def check_judge(judge, where: str = "the judge") -> None:
    """A judge must give next-token probabilities: causal and normalised."""
    if not judge.is_causal:
        raise ConfigError(f"{where} is a masked LM ({judge.name}): a pseudo-perplexity is not a perplexity; "
                          "judge with a causal model")
    if not judge.is_normalised:
        raise ConfigError(f"{where} ({judge.name}) gives unnormalised scores: no perplexity; judge with a "
                          "normalised model")


def sample_figures(samples: list[list[str]], judge=None, mode: str = "lines") -> dict:
    """Every figure of a set of samples (each a list of lines); judge_word_perplexity only when a
    judge is given."""
    by_sample = _words(samples)
    lines = [words for sample in by_sample for words in sample]
    flat_samples = [[word for words in sample for word in words] for sample in by_sample]
    mean, spread = line_lengths(lines)
    figures = {
        "samples": len(samples),
        "lines": len(lines),
        "words": sum(len(words) for words in lines),
        "distinct_1": distinct_n(lines, 1),
        "distinct_2": distinct_n(lines, 2),
        "distinct_3": distinct_n(lines, 3),
        "self_bleu": self_bleu(flat_samples),
        "repetition": repetition(flat_samples),
        "zipf": zipf_coefficient([word for words in lines for word in words]),
        "mean_length": mean,
        "std_length": spread,
    }
    if judge is not None:
        figures["judge_word_perplexity"] = judge_perplexity(judge, [line for s in samples for line in s], mode)
    return figures
