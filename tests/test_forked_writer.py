"""The token ring that writes blocks in order from forked workers (ngram/forked_writer.py)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from langmodels.errors import ConfigError
from langmodels.ngram import forked_writer

pytestmark = pytest.mark.skipif(not forked_writer.can_fork(), reason="forked workers need os.fork (Linux)")


def blocks_of(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size, dtype=np.uint8) for size in sizes]


def no_children_left():
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("sizes", [[], [5], [0, 0, 7], [1000, 3, 0, 65536, 17, 1, 4096, 9]])
def test_blocks_land_one_after_another_whatever_the_workers(tmp_path, workers, sizes):
    blocks = blocks_of(sizes)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"head")
        end = forked_writer.write_in_order(fd, 4, len(blocks), blocks.__getitem__, workers=workers)
    finally:
        os.close(fd)
    expected = b"head" + b"".join(block.tobytes() for block in blocks)
    assert end == len(expected)
    assert path.read_bytes() == expected
    no_children_left()


def test_without_fork_the_blocks_are_written_here(tmp_path, monkeypatch):
    monkeypatch.setattr(forked_writer, "can_fork", lambda: False)
    parent = os.getpid()
    made_by = []

    def block(j):
        made_by.append(os.getpid())
        return np.full(3, j, dtype=np.uint8)

    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        assert forked_writer.write_in_order(fd, 0, 4, block, workers=2) == 12
    finally:
        os.close(fd)
    assert made_by == [parent] * 4
    assert (tmp_path / "out").read_bytes() == bytes([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])


def failing_at(j, error):
    def block(index):
        if index == j:
            raise error
        return np.zeros(10, dtype=np.uint8)
    return block


@pytest.mark.parametrize("failing", [0, 3, 6])
def test_a_workers_error_reaches_the_caller_with_its_class_and_line(tmp_path, failing):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ConfigError, match=r"^block six is bad$"):
            forked_writer.write_in_order(fd, 0, 7, failing_at(failing, ConfigError("block six is bad")), workers=2)
    finally:
        os.close(fd)
    no_children_left()


def test_a_full_disk_in_a_worker_stays_an_oserror_with_its_errno(tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as caught:
            forked_writer.write_in_order(fd, 0, 5, failing_at(2, OSError(errno.ENOSPC, "No space left on device")))
    finally:
        os.close(fd)
    assert caught.value.errno == errno.ENOSPC
    no_children_left()


def test_an_unexpected_error_names_its_class_and_a_killed_worker_its_signal(tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)

    def killed(index):
        if index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros(4, dtype=np.uint8)

    try:
        with pytest.raises(RuntimeError, match=r"ZeroDivisionError: division by zero"):
            forked_writer.write_in_order(fd, 0, 4, failing_at(1, ZeroDivisionError("division by zero")))
        with pytest.raises(RuntimeError, match=r"killed by signal SIGKILL"):
            forked_writer.write_in_order(fd, 0, 4, killed)
    finally:
        os.close(fd)
    no_children_left()


def test_ctrl_c_in_the_parent_ends_every_worker_at_once(tmp_path):
    def slow(index):
        time.sleep(30)
        return np.zeros(1, dtype=np.uint8)

    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            forked_writer.write_in_order(fd, 0, 4, slow)
    finally:
        timer.cancel()
        os.close(fd)
    assert time.monotonic() - start < 10
    no_children_left()


def test_workers_die_with_a_killed_parent(tmp_path):
    """A parent killed while its workers format leaves none of them running (PR_SET_PDEATHSIG)."""
    script = f"""
import os, time, numpy as np
from langmodels.ngram import forked_writer
def slow(index):
    with open({str(tmp_path / 'pids')!r}, "a") as handle:
        handle.write(f"{{os.getpid()}}\\n")
    time.sleep(60)
    return np.zeros(1, dtype=np.uint8)
fd = os.open({str(tmp_path / 'out')!r}, os.O_WRONLY | os.O_CREAT)
forked_writer.write_in_order(fd, 0, 4, slow)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len((tmp_path / "pids").read_text().split()
                                                    if (tmp_path / "pids").exists() else []) < 2:
            time.sleep(0.05)
        workers = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_with_sigchld_ignored_the_pipes_still_tell_success_and_failure(tmp_path):
    """A program that ignores SIGCHLD has its children reaped by the system (waitpid: ECHILD)."""
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        blocks = blocks_of([100, 7, 3000, 1])
        assert forked_writer.write_in_order(fd, 0, len(blocks), blocks.__getitem__) == 3108
        assert (tmp_path / "out").read_bytes() == b"".join(block.tobytes() for block in blocks)
        with pytest.raises(ConfigError, match="bad block"):
            forked_writer.write_in_order(fd, 0, 5, failing_at(3, ConfigError("bad block")))
    finally:
        os.close(fd)
        signal.signal(signal.SIGCHLD, previous)
