"""Worker processes of ``emtool.parallel`` and Ctrl-C: the whole process group gets SIGINT, so
each worker must behave (an idle worker that died in the task queue printed a traceback
through the CLI's one-line error; CI, 2026-12-07)."""
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from emtool.parallel import _run_chunk, _single_thread


def _pid(index):
    return os.getpid()


def _sleep_then_pid(index):
    time.sleep(5)
    return os.getpid()


@pytest.fixture
def pool():
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_single_thread) as executor:
        yield executor


def test_an_idle_worker_survives_ctrl_c(pool):
    pid = pool.submit(_run_chunk, _pid, (), [0]).result()[0]
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert pool.submit(_run_chunk, _pid, (), [1]).result(timeout=30) == [pid]


def test_a_busy_worker_stops_its_task_on_ctrl_c(pool):
    pid = pool.submit(_run_chunk, _pid, (), [0]).result()[0]
    busy = pool.submit(_run_chunk, _sleep_then_pid, (), [0])
    time.sleep(1.0)
    start = time.perf_counter()
    os.kill(pid, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        busy.result(timeout=30)
    assert time.perf_counter() - start < 3
