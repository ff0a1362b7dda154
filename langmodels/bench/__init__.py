"""The benchmark harness: configs (config.py), the corpora they slice (slices.py), what is measured
of each model (measure.py), what is made from finished runs (mixtures.py: interpolated rows;
finetune.py: a run trained further on another corpus; inside.py: figures from the checkpoints), the
cached, resumable runner (runner.py) and the report (report.py, plots.py). It uses the LanguageModel
contract only, so a new family joins by implementing it."""

from .config import BenchConfig, load_config
from .runner import run_benchmark

__all__ = ["BenchConfig", "load_config", "run_benchmark"]
