"""Helpers shared by the test files."""

import os

import pytest
import torch
from hypothesis import settings

# On CI (CI=true) the property tests draw the same examples every run, so a red CI is reproducible
# and never a draw of luck; locally they draw new examples each run and keep finding new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every test module runs on one torch thread: small models on a busy 2-core machine ran many
    times slower on two threads while another process held a core. Module-wide, so that module
    fixtures training a model run on one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def stop_training_at():
    """stop_training_at(model, step): make model's next fit raise KeyboardInterrupt at that step,
    as a Ctrl-C would, after the checkpoints written before it."""

    def arrange(model, step):
        real_batch = model.training_batch

        def batch_or_interrupt(data, current):
            if current == step:
                raise KeyboardInterrupt
            return real_batch(data, current)

        model.training_batch = batch_or_interrupt
        return model

    return arrange
