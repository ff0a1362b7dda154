"""Helpers shared by the test files."""

import pytest


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
