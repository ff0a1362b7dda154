"""Compute to overtake (bench/overtake.py, bench/compute.py): the crossing of a learning curve with
the best n-gram's line, found on synthetic results, and the FLOPs estimate against a hand count and
torch's own FLOP counter."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from torch.utils.flop_counter import FlopCounterMode

from langmodels.bench.compute import training_flops
from langmodels.bench.overtake import overtakes
from langmodels.bench.results import Entry
from langmodels.bench.sections import neural_verdict, overtake_rows, overtake_section, overtake_sentence
from langmodels.neural.gpt import GPTLM
from langmodels.neural.lstm import LSTMLM

HELD_OUT = {"n_tokens": 1500, "n_words": 1000, "n_chars": 6000}  # a subword model: 1.5 tokens per word


def held_out(word_perplexity: float, bits: float = 2.0) -> dict:
    return {**HELD_OUT, "word_perplexity": word_perplexity, "bits_per_char": bits}


def result(run_id: str, curve=(), valid=None, flops_per_token=None, seed=None, unit=None) -> dict:
    """A stored run: an n-gram model without a curve, a neural one with it (unit: its size's unit)."""
    unit = unit or ("parameters" if curve else "n-grams")
    return {"run_id": run_id, "seed": seed, "sweep": {}, "causal": True, "normalised": True, "valid": valid,
            "size_unit": unit,
            "train": {"curve": [dict(point) for point in curve]},
            "compute": None if flops_per_token is None else {"flops_per_token": flops_per_token}}


def point(step: int, word_perplexity: float) -> dict:
    """A curve point whose valid loss (nats per token) is that word perplexity on HELD_OUT."""
    loss = math.log(word_perplexity) * HELD_OUT["n_words"] / HELD_OUT["n_tokens"]
    return {"step": step, "tokens": 100 * step, "seconds": 0.5 * step, "valid_loss": loss, "train_loss": loss}


def entry(model: str, *results) -> Entry:
    return Entry("brown", model, model, results=list(results), probes=[{} for _ in results])


def race_of(overtake, model):
    return next(race for race in overtake.races if race.model == model)


def test_the_crossing_is_the_first_point_strictly_below_the_best_ngram():
    entries = [
        entry("kn5", result("brown/kn5", valid=held_out(150.0))),
        entry("bigram", result("brown/bigram", valid=held_out(180.0))),
        entry("lstm", result("brown/lstm", [point(1, 400), point(2, 150.5), point(3, 149.5), point(4, 120)],
                             held_out(120), flops_per_token=7.0)),
        entry("mlp", result("brown/mlp", [point(1, 300), point(2, 200), point(3, 170)], held_out(170), 3.0)),
    ]
    (found,) = overtakes(entries, {"brown": "word"}, {"brown": "the valid lines"})
    assert (found.baseline, found.baseline_value, found.held_out) == ("kn5", 150.0, "the valid lines")
    lstm = race_of(found, "lstm")
    assert [round(p.value, 6) for p in lstm.points] == [400, 150.5, 149.5, 120]  # tokens per word undone
    crossing = lstm.crossing  # 150.5 is just above the line
    assert (crossing.step, crossing.tokens, crossing.seconds, crossing.flops) == (3, 300, 1.5, 2100.0)
    assert race_of(found, "mlp").crossing is None
    rows = {row[0]: row for row in overtake_rows(found)}
    assert rows["lstm"][2:6] == ["3", "300", "1.50", "2.10e+03"]
    assert rows["mlp"][2] == "not within budget"
    sentence = overtake_sentence(found)
    assert "1 of 2 neural run(s) pass kn5" in sentence and "lstm first by compute, at step 3" in sentence
    assert "not within budget: mlp" in sentence
    section = "\n".join(overtake_section([found], {"overtake-brown": "figure"}))
    assert "plots/overtake-brown.png" in section and "**brown** (validated on the valid lines" in section


def test_no_crossing_is_said_plainly():
    entries = [entry("kn7", result("brown/kn7", valid=held_out(100.0))),
               entry("gpt", result("brown/gpt", [point(1, 300), point(2, 140), point(3, 160)], held_out(160), 9.0))]
    (found,) = overtakes(entries, {"brown": "word"})
    assert all(race.crossing is None for race in found.races)
    assert overtake_sentence(found) == ("On brown, no neural run passes kn7 (word perplexity 100.00 on it) within "
                                        "its budget: the closest, gpt, gets down to 140.00.")


def test_character_corpora_are_read_in_bits_per_char():
    loss = 1.2  # nats per token; 1.5 tokens per character here
    curve = [{"step": 1, "tokens": 10, "seconds": 1.0, "valid_loss": loss}]
    entries = [entry("kn7", result("s/kn7", valid=held_out(900.0, bits=2.6))),
               entry("gpt", result("s/gpt", curve, held_out(900.0), None))]
    (found,) = overtakes(entries, {"brown": "char"})
    (race,) = found.races
    expected = loss * HELD_OUT["n_tokens"] / (HELD_OUT["n_chars"] * math.log(2))
    assert race.points[0].value == pytest.approx(expected) and race.crossing is not None
    assert race.crossing.flops is None and overtake_rows(found)[0][5] == "–"


def test_no_line_without_a_count_based_model_on_the_held_out_text():
    entries = [entry("kn5", result("brown/kn5", valid=None)),
               entry("gpt2", result("brown/gpt2", valid=held_out(50.0), unit="parameters")),  # pretrained: no curve
               entry("lstm", result("brown/lstm", [point(1, 200)], held_out(200), 1.0))]
    assert overtakes(entries, {"brown": "word"}) == []


# ---- the FLOPs estimate -----------------------------------------------------------------------

LINES = [f"the cat number {i} sat on the mat and the dog {i % 7} ran to the {i % 13} park" for i in range(200)]


def one_step_flops(model) -> float:
    """torch's FLOP counter over one training step (forward and backward), per target token."""
    data = model.training_data(LINES, model.mode_)
    model.module_.train()
    batch = model.training_batch(data, 0)
    with FlopCounterMode(display=False) as counter:
        model.loss(batch).backward()
    return counter.get_total_flops() / batch.n_targets


def test_gpt_flops_are_6_matmul_weights_plus_palm_attention_term():
    L, d, T = 2, 16, 8
    model = GPTLM(n_layer=L, n_head=2, n_embd=d, context=T, batch_size=4, softmax="full", tokenizer="char",
                  seed=0, threads=1).fit(LINES, max_steps=1)
    V = len(model.tokenizer.vocab)
    # per block: W_QKV 3d^2, W_O d^2, MLP 4d^2 twice; the tied output layer V d (Press & Wolf 2017)
    by_hand = 6 * (L * 12 * d * d + V * d) + 12 * L * T * d  # PaLM app. B: 6N + 12 L H Q T
    estimate = training_flops(model, LINES)
    assert estimate["flops_per_token"] == by_hand
    assert estimate["attention_flops"] == 12 * L * T * d
    # torch counts every matmul and attention product it runs (windows of T characters: exact here)
    assert one_step_flops(model) == pytest.approx(by_hand, rel=1e-9)


def test_lstm_flops_count_the_gates_the_projection_and_the_output_layer():
    e, h = 16, 24
    model = LSTMLM(n_layer=1, n_embd=e, hidden=h, context=8, batch_size=4, softmax="full", tokenizer="char",
                   seed=0, threads=1).fit(LINES, max_steps=1)
    V = len(model.tokenizer.vocab)
    gates = 4 * h * (e + h)  # input-to-hidden and hidden-to-hidden, 4 gates
    by_hand = 6 * (gates + h * e + V * e)  # + the projection hidden -> n_embd, + the tied output layer
    estimate = training_flops(model, LINES)
    assert estimate["flops_per_token"] == by_hand and estimate["attention_flops"] == 0
    # torch's counter has no formula for the fused LSTM kernel: it sees the rest of the step
    assert one_step_flops(model) == pytest.approx(by_hand - 6 * gates, rel=1e-9)


def test_an_adaptive_softmax_counts_each_tail_by_its_share_of_the_training_targets():
    model = GPTLM(n_layer=1, n_head=2, n_embd=16, context=8, batch_size=4, softmax="adaptive", seed=0,
                  threads=1).fit(LINES, max_steps=1)
    adaptive = model.module_.output.adaptive
    assert len(adaptive.tail) >= 1
    flat, lengths = model.tokenizer.encode_lines(LINES)  # the training targets: every token and each line's end
    targets = len(flat) + len(lengths)
    bounds = adaptive.cutoffs
    shares = [((flat >= low) & (flat < high)).sum() / targets for low, high in pairwise(bounds)]
    tails = [tail[0].weight.numel() + tail[1].weight.numel() for tail in adaptive.tail]
    output = adaptive.head.weight.numel() + sum(share * size for share, size in zip(shares, tails))
    estimate = training_flops(model, LINES)
    assert estimate["output_weights"] == pytest.approx(output, rel=1e-12)
    assert 0 < sum(shares) < 1
    # without the text every tail counts whole: an upper bound
    assert training_flops(model)["output_weights"] == adaptive.head.weight.numel() + sum(tails)


def test_a_model_without_a_torch_module_has_no_estimate():
    from langmodels import NGramLM

    assert training_flops(NGramLM(order=2, smoothing="witten-bell").fit(LINES)) is None


def scored(run_id: str, bits: float, *, neural: bool = False, mixture: bool = False) -> dict:
    """A run scored on the whole test split, read on bits per character."""
    stored = result(run_id, [point(1, 300)] if neural else (), unit="parameters" if neural or mixture else None)
    stored.update(test={"bits_per_char": bits, "word_perplexity": 2 ** bits, "n_zero_prob": 0}, test_lines=None)
    if mixture:
        stored["mixture"] = {"components": ["lstm", "kn7"]}
    return stored


def test_the_results_say_plainly_whether_a_pure_neural_model_is_below_the_best_ngram():
    line = entry("kn7", scored("s/kn7", 2.19))
    mixed = entry("lstm+kn7", scored("s/mix", 2.05, mixture=True))  # below the line, but not pure neural
    behind = [line, mixed, entry("lstm", scored("s/lstm", 2.30, neural=True))]
    assert neural_verdict(behind, "char") == ("No pure neural model is below the best count-based model, kn7 "
                                              "(2.1900), on this test split within these budgets: the best, lstm, "
                                              "has 2.3000.")
    ahead = [*behind, entry("gpt", scored("s/gpt", 2.1, neural=True))]
    assert neural_verdict(ahead, "char") == ("The best pure neural model, gpt (2.1000), is below the best count-based "
                                             "model, kn7 (2.1900).")
    assert neural_verdict([line, mixed], "char") is None
