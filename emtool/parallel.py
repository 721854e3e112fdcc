"""Running many independent configuration tasks: in-process, local worker processes, or Dask.

A task is a pure function of (arguments, index); results are identical whichever way they
are run. ``run_indexed`` hands results to a callback as they complete (any order); the
caller orders them (the dataset writer sorts by index).
"""
import logging
import os

LOG = logging.getLogger(__name__)


def chunks(indices, size):
    """Consecutive slices of ``indices`` with at most ``size`` items each."""
    return [indices[k:k + size] for k in range(0, len(indices), size)]


def _single_thread():
    """Worker initializer: one Numba thread per process (parallelism is over processes)."""
    os.environ["NUMBA_NUM_THREADS"] = "1"
    import numba
    numba.set_num_threads(1)


def _run_chunk(func, args, indices):
    return [func(*args, index) for index in indices]


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
        from emtool.params import ParameterError
        raise ParameterError("--scheduler needs dask.distributed: pip install 'emtool[cluster]'") from None
    with Client(scheduler) as client:
        LOG.info("Dask scheduler %s: %d workers", scheduler, len(client.scheduler_info()["workers"]))
        futures = [client.submit(_run_chunk, func, args, part, pure=False)
                   for part in chunks(indices, chunk)]
        for future in as_completed(futures):
            for result in future.result():
                on_result(result)
            future.release()
