"""Run by test_distributed.py under torchrun: `langmodels train ARGS...` in which rank 1, at step
STEP, either presses Ctrl-C at torchrun (ctrl-c: SIGINT to its parent, the launcher, as a user at
the terminal would) and waits to be stopped, or fails (fail: a one-line error of its own).

    python -m torch.distributed.run --nproc_per_node 2 tests/torchrun_interrupt.py ctrl-c|fail STEP ARGS...
"""

import os
import signal
import sys
import time

from langmodels import cli
from langmodels.errors import LangmodelsError
from langmodels.neural.gpt import GPTLM

how, at_step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real_batch = GPTLM.training_batch


def batch_or_ctrl_c(self, data, step):
    if step == at_step and os.environ["RANK"] == "1":
        if how == "fail":
            raise LangmodelsError(f"rank 1 failed at step {step}")
        os.kill(os.getppid(), signal.SIGINT)
        time.sleep(60)  # torchrun's signal ends this
    return real_batch(self, data, step)


GPTLM.training_batch = batch_or_ctrl_c
sys.exit(cli.main(argv))
