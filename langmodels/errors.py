"""The one exception family a user sees.

Every mistake a user can make (an unknown name, a bad path, an empty or non-UTF-8 file, a corrupt
checkpoint, a bad option) raises a subclass of :class:`LangmodelsError` whose message is one line
naming the problem. The CLI prints that line and exits non-zero; only bugs produce tracebacks.
"""


class LangmodelsError(Exception):
    """A user mistake or an unusable input, described in one line."""


class CorpusError(LangmodelsError):
    """A corpus name, file or folder that cannot be read as text."""


class CheckpointError(LangmodelsError):
    """A checkpoint folder that is missing, truncated, from another version or edited."""


class ConfigError(LangmodelsError):
    """A hyper-parameter or option with a value the model cannot use."""


class InputError(LangmodelsError):
    """An argument of a call that is not what the call takes: a number where a line of text goes,
    no lines to score, an empty path."""


class ArpaFormatError(LangmodelsError):
    """An ARPA file that breaks the format (KenLM's checks): the message names the file and line."""


class DiskFullError(LangmodelsError, OSError):
    """A write that ran out of space (ENOSPC) or of quota (EDQUOT): the message names the path
    being written. Also an OSError (errno, strerror, filename), for callers that handle those."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"
