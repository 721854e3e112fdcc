"""Running many independent configuration tasks: in-process, local worker processes, or Dask;
and the threading policy of the Numba kernels (``run_kernel``, ``single_thread``).

A task is a pure function of (arguments, index); results are identical whichever way they
are run. ``run_indexed`` hands results to a callback as they complete (any order); the
caller orders them (the dataset writer sorts by index).
"""
import contextlib
import logging
import math
import os
import signal
import time

import numba

from emtool.errors import ParameterError

LOG = logging.getLogger(__name__)


class ProgressLog:
    """INFO lines ``"<what>: done/total configurations (p %), s"`` through ``logger`` each time
    another ``step`` fraction of ``total`` is done (default 10 %) and at the end, so that a
    log file shows the progress of a long loop; ``advance()`` once per finished item."""

    def __init__(self, logger, what, total, step=0.1):
        self.logger, self.what, self.total = logger, what, int(total)
        self.every = max(1, math.ceil(step * self.total))
        self.done = 0
        self.start = time.perf_counter()

    def advance(self, count=1):
        before, self.done = self.done, self.done + count
        if self.done // self.every > before // self.every or self.done == self.total:
            self.logger.info("%s: %d/%d configurations (%.0f %%), %.1f s", self.what, self.done,
                             self.total, 100 * self.done / max(1, self.total),
                             time.perf_counter() - self.start)


def chunks(indices, size):
    """Consecutive slices of ``indices`` with at most ``size`` items each."""
    return [indices[k:k + size] for k in range(0, len(indices), size)]


#: Whether this worker process is running a task (``_run_chunk``).
_busy = False


def _worker_sigint(signum, frame):
    """Ctrl-C reaches the workers too (one process group): a busy one stops its task (the
    parent keeps what finished), an idle one waits for the parent to shut the pool down
    instead of dying with a traceback while it reads the task queue."""
    if _busy:
        raise KeyboardInterrupt


def _single_thread():
    """Worker initializer: one Numba thread per process (parallelism is over processes);
    Ctrl-C as ``_worker_sigint`` says."""
    signal.signal(signal.SIGINT, _worker_sigint)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    import numba
    numba.set_num_threads(1)


def _run_chunk(func, args, indices):
    global _busy
    _busy = True
    try:
        return [func(*args, index) for index in indices]
    finally:
        _busy = False


def run_indexed(func, args, indices, on_result, workers=1, scheduler=None, chunk=4):
    """Call ``on_result(func(*args, index))`` for every index.

    workers : local processes (1: in this process); scheduler : address of a Dask scheduler
    (``tcp://host:port``), which then runs the tasks on its workers instead. ``func`` and
    ``args`` must be picklable (module-level function, plain data).
    """
    indices = list(indices)
    if not indices:
        return
    if scheduler:
        _run_dask(func, args, indices, on_result, scheduler, chunk)
    elif workers <= 1:
        for index in indices:
            on_result(func(*args, index))
    else:
        _run_local(func, args, indices, on_result, workers, chunk)


def _run_local(func, args, indices, on_result, workers, chunk):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    pending = chunks(indices, chunk)[::-1]
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
        running = set()
        while pending or running:
            while pending and len(running) < 2 * workers:
                running.add(pool.submit(_run_chunk, func, args, pending.pop()))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                for result in future.result():
                    on_result(result)


def _run_dask(func, args, indices, on_result, scheduler, chunk):
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ParameterError("--scheduler needs dask.distributed: pip install 'emtool[cluster]'") from None
    with Client(scheduler) as client:
        LOG.info("Dask scheduler %s: %d workers", scheduler, len(client.scheduler_info()["workers"]))
        futures = [client.submit(_run_chunk, func, args, part, pure=False)
                   for part in chunks(indices, chunk)]
        for future in as_completed(futures):
            for result in future.result():
                on_result(result)
            future.release()


# --- the threading policy of the Numba kernels ---------------------------------------------

def match_torch_threads():
    """Give PyTorch (imported) as many intra-op threads as the Numba kernels have:
    ``NUMBA_NUM_THREADS`` is the one thread knob, and worker processes run one thread each.
    Without it, once Numba's OpenMP layer has started in a worker, PyTorch takes a thread per
    core there whatever OMP_NUM_THREADS says, and two workers on two cores run four threads."""
    import torch
    threads = numba.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


#: Below this many atoms kernels run on one thread: a parallel region costs more than it
#: saves for small cells, and far more when the machine is busy (threads wait for cores).
PARALLEL_MIN_ATOMS = 256


def n_chunks(natoms):
    """Parallel work chunks for a kernel: four per Numba thread."""
    return max(1, min(natoms, 4 * numba.get_num_threads()))


@contextlib.contextmanager
def single_thread():
    """Run the Numba code inside on one thread (parallel regions included), then restore."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def run_kernel(kernel, natoms, *args):
    """Call a parallel SNAP kernel with ``n_chunks`` work chunks as last argument, on one
    thread for fewer than ``PARALLEL_MIN_ATOMS`` atoms."""
    if natoms >= PARALLEL_MIN_ATOMS or numba.get_num_threads() == 1:
        return kernel(*args, n_chunks(natoms))
    with single_thread():
        return kernel(*args, 1)
