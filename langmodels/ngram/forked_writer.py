"""Blocks of a file made by forked worker processes and written in order: a token ring.

Formatting an ARPA file is many small numpy calls per block. Threads share one interpreter lock
and each small call waits for it: on the Brown KN-5 ARPA two threads spent 35% more CPU than one
and gained only 1.2x. Processes do not share the lock. `write_in_order` forks `workers` copies
of this process (the tables are shared: memory-mapped files, or pages nobody writes), gives
block j to worker j mod workers, and each worker writes its blocks itself at their place in the
file (`os.pwrite`), so no byte is copied between processes. A block's place is known once the
block before it is formatted: the offset where the next block starts goes round the workers as
an 8-byte token, one pipe per worker. A worker passes it on as soon as its block is formatted and
then writes, so the next worker never waits on a write.

Failures: a worker dies with its parent (Linux's PR_SET_PDEATHSIG), so a killed parent leaves
no worker writing behind it. A worker that fails sends its error to the parent and exits; the
worker waiting for its token then reads the end of the pipe and exits too, so nothing waits
forever. The parent raises the first error again: an OSError with its errno (a full disk stays a
full disk), one of the project's errors with its class and line, anything else as a
RuntimeError naming it. Every worker is killed and reaped on any way out, Ctrl-C included. Where
the program ignores SIGCHLD (the system reaps the workers, waitpid finds none) the pipes still
tell the outcome. Where os.fork is missing (not Linux) the blocks are made and written here, one
after another.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Callable

import numpy as np

from .. import errors
from .external_sort import libc, pwrite_all

_TOKEN = struct.Struct("<q")  # the offset where the next block starts
_LENGTH = struct.Struct("<I")  # a worker's error message: its length, then "class\0errno\0text"
_FOLLOWED = 3  # the exit status of a worker that stopped because the one before it did
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when its parent dies


def can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _death_signal_setter():
    """prctl from the C library, looked up before forking (a child only calls it)."""
    try:
        return libc().prctl
    except (OSError, AttributeError):
        return None


def _read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from a pipe, or None if its writers are gone first."""
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _serial(fd: int, offset: int, count: int, block: Callable[[int], np.ndarray]) -> int:
    for j in range(count):
        offset += pwrite_all(fd, np.ascontiguousarray(block(j)), offset)
    return offset


def _work(rank: int, workers: int, count: int, block, fd: int, token_in: int, token_out: int, report: int) -> None:
    """Worker `rank` makes and writes blocks rank, rank + workers, ...; exits, never returns."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a worker at once, quietly
        for j in range(rank, count, workers):
            data = np.ascontiguousarray(block(j))
            token = _read_exactly(token_in, _TOKEN.size)
            if token is None:  # the worker before this one is gone and has said why, or was killed
                status = _FOLLOWED
                return
            offset = _TOKEN.unpack(token)[0]
            os.write(token_out, _TOKEN.pack(offset + data.nbytes))
            pwrite_all(fd, data, offset)
        status = 0
    except BaseException as error:  # noqa: BLE001 - every failure goes to the parent as one message
        errno = getattr(error, "errno", None) if isinstance(error, OSError) else None
        text = error.strerror if errno is not None and error.strerror else str(error)
        message = f"{type(error).__name__}\0{errno or ''}\0{text}".encode("utf-8", "replace")[:4000]
        try:
            os.write(report, _LENGTH.pack(len(message)) + message)
        except OSError:
            pass
    finally:
        os._exit(status)  # no atexit handlers, no flushing of buffers inherited from the parent


def write_in_order(fd: int, offset: int, count: int, block: Callable[[int], np.ndarray], *, workers: int = 2) -> int:
    """Write block(0), block(1), ..., block(count - 1) (uint8 arrays) one after another into the
    open file `fd` from `offset`, made by `workers` forked processes; returns the offset after
    the last block. Flush any buffered writer of `fd` before calling."""
    workers = max(1, min(workers, count))
    if workers == 1 or not can_fork():
        return _serial(fd, offset, count, block)
    prctl, parent = _death_signal_setter(), os.getpid()
    rings = [os.pipe() for _ in range(workers)]  # rings[r]: the tokens worker r reads
    report_read, report_write = os.pipe()
    open_fds = {report_read, report_write, *(end for ring in rings for end in ring)}
    children: list[int] = []
    try:
        os.write(rings[0][1], _TOKEN.pack(offset))
        for rank in range(workers):
            pid = os.fork()
            if pid == 0:  # the worker: keeps its token's read end, the next one's write end, the report's
                try:
                    if prctl is not None:
                        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
                    if os.getppid() != parent:  # the parent died before the line above
                        os._exit(1)
                    keep = {rings[rank][0], rings[(rank + 1) % workers][1], report_write}
                    for descriptor in open_fds - keep:
                        os.close(descriptor)
                    _work(rank, workers, count, block, fd, rings[rank][0], rings[(rank + 1) % workers][1],
                          report_write)
                finally:
                    os._exit(1)
            children.append(pid)
        last = rings[count % workers][0]  # where the token after the last block arrives
        for descriptor in open_fds - {last, report_read}:  # a dead worker's pipes must reach their end
            os.close(descriptor)
            open_fds.discard(descriptor)
        codes = []
        for pid in list(children):  # a failure ends every other worker (its token pipe ends)
            try:
                _, status = os.waitpid(pid, 0)
                codes.append(os.waitstatus_to_exitcode(status))
            except ChildProcessError:  # reaped by the system (SIGCHLD ignored): the pipes tell
                pass
            children.remove(pid)
        message = _first_message(report_read)
        if message or any(code not in (0, _FOLLOWED) for code in codes):
            raise _worker_error(message, [code for code in codes if code not in (0, _FOLLOWED)])
        token = _read_exactly(last, _TOKEN.size)
        if token is None:
            raise RuntimeError("the writing workers ended without passing on the last block's end")
        return _TOKEN.unpack(token)[0]
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for descriptor in open_fds:
            try:
                os.close(descriptor)
            except OSError:
                pass


def _first_message(report: int) -> bytes | None:
    """The first error message in the report pipe, if a worker sent one. Read without waiting:
    a worker writes its message (one write of under PIPE_BUF bytes: whole) before it exits."""
    os.set_blocking(report, False)
    try:
        data = os.read(report, 1 << 16)
    except BlockingIOError:
        return None
    if len(data) < _LENGTH.size:
        return None
    return data[_LENGTH.size : _LENGTH.size + _LENGTH.unpack(data[: _LENGTH.size])[0]]


def _worker_error(message: bytes | None, codes: list[int]) -> BaseException:
    """The first failed worker's error as the parent raises it, from its message if it sent one
    (`codes`: the exit codes of the workers that failed themselves, negative for a signal)."""
    if not message:
        how = ", ".join(f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                        for code in codes)
        return RuntimeError(f"a writing worker ended without a word ({how or 'no status'})")
    name, errno, text = (message.decode("utf-8", "replace").split("\0", 2) + ["", ""])[:3]
    if errno:
        return OSError(int(errno), text)
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.LangmodelsError):
        return kind(text)
    if name == "KeyboardInterrupt":
        return KeyboardInterrupt()
    return RuntimeError(f"a writing worker failed: {name}: {text}")
