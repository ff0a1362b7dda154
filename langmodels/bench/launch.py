"""A benchmark run trained on several processes: `launch = { nproc = N }` in a model's entry.

The runner calls `fit_on_processes`, which starts
`python -m torch.distributed.run --standalone --nproc_per_node N -m langmodels.bench.launch JOB`.
Each process reads the run's corpus as the runner does (slices.load_corpus), builds the model from
the run's settings, joins the process group and trains on its share of each global batch
(docs/design.md 10); rank 0 writes the fitted model, which then becomes the runner's model and is
scored like any other. A failure is one line: the ranks' own lines, without torchrun's report.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..base import LanguageModel
from ..errors import LangmodelsError
from .config import CorpusSpec
from .slices import load_corpus

STOP_SECONDS = 60  # how long the processes get to stop (rank 0 writing its state) after Ctrl-C


def fit_on_processes(model, nproc: int, corpus_spec, train_fraction, valid, budget: dict, work_dir: Path,
                     prefix: str) -> None:
    """Train `model` (unfitted) as its run does, on `nproc` processes; it is then the fitted model.
    The job and the model pass through a temporary folder `prefix`... in `work_dir`."""
    job = {
        "class": [type(model).__module__, type(model).__qualname__],
        "params": model.get_params(),
        "corpus": dataclasses.asdict(corpus_spec),
        "train_fraction": train_fraction,
        # The lines themselves: the corpus's valid split, or what a corpus without one has its curve
        # watched on (the first lines of its test text, measure.watched_lines), as one process gets.
        "valid": None if valid is None else [str(line) for line in valid],
        "budget": budget,
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=work_dir) as work:
        job["out"] = str(Path(work) / "model")
        (Path(work) / "job.json").write_text(json.dumps(job), encoding="utf-8")
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                   "-m", "langmodels.bench.launch", str(Path(work) / "job.json")]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = process.communicate()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)  # torchrun passes it on to every rank
            try:
                process.communicate(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        if process.returncode != 0:
            said = [line for line in stderr.splitlines() if line.startswith("langmodels")]
            last = said or stderr.strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
            raise LangmodelsError(f"training on {nproc} processes failed: {'; '.join(last)}")
        fitted = LanguageModel.load(job["out"])
    vars(model).update(vars(fitted))  # the run's model object is now the fitted one


def main(argv: list[str]) -> int:
    """One rank of a launched run (under torchrun): train, and on rank 0 write the model."""
    from ..neural.distributed import processes  # torch, in the launched processes only

    rank = os.environ.get("RANK", "0")
    try:
        job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        module, name = job["class"]
        model = getattr(importlib.import_module(module), name)(**job["params"])
        data = load_corpus(CorpusSpec(**job["corpus"]))
        with processes(model.config.device) as world:
            model.fit(data.train_split(job["train_fraction"]), job["valid"], **job["budget"], progress=False)
        if world.is_main:
            model.save(job["out"])
    except LangmodelsError as error:
        print(f"langmodels: error: rank {rank}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"langmodels: rank {rank}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
