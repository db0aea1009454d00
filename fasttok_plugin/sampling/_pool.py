"""The sampler's worker pool: bounded parts, forkserver/spawn workers, a bounded number of parts in flight."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from fasttok_plugin.errors import SamplingError
from fasttok_plugin.sampling._part import PartResult, Task, sample_part

__all__ = ["PART_CHUNKS", "WorkerPool", "part_ranges", "peak_rss_mb", "run_tasks"]

logger = logging.getLogger(__name__)

#: Largest number of chunks one worker task produces; bounds the memory of a part in flight.
PART_CHUNKS = 8192


def part_ranges(budget: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` parts of at most `PART_CHUNKS` chunks covering ``range(budget)``."""
    # Read at call time, so a patched PART_CHUNKS applies.
    size = PART_CHUNKS
    for start in range(0, budget, size):
        yield start, min(budget, start + size)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``; 0.0 where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    factor = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * factor / 2**20


def _sample_part_in_worker(task: Task) -> PartResult:
    """`sample_part` plus the worker's peak memory, measured in the worker itself.

    Under forkserver the workers are not children of the sampling process, so ``RUSAGE_CHILDREN`` there
    cannot see them.
    """
    return replace(sample_part(task), peak_rss_mb=peak_rss_mb())


def _pool_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn`` (Windows); never ``fork``.

    The sampler runs inside processes that have imported torch and run Lightning (OpenMP pools,
    DataLoader pin-memory and logger threads): a ``fork`` there copies locks held by other threads and
    can deadlock the child (Python 3.12 warns about it, 3.14 stops defaulting to it), and macOS/Windows
    do not default to it. Workers instead fork from a clean server process (which imports the main
    module once) and unpickle only this module's top-level `_sample_part_in_worker`, so our own entry
    points (the ``fasttok`` script, pytest) need nothing special.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class WorkerPool:
    """A process pool started on first use and reused by every later sampling run until `close`.

    Starting forkserver/spawn workers costs a process start and the imports per worker: a datamodule that
    samples a round per few batches keeps one pool for its lifetime instead of one per round.

    Attributes:
        workers: Worker processes of the pool.
        started: How many executors this object has started (1 while it is reused; restarts after a
            worker died or after `close` count again).
    """

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)
        self.started = 0
        self._executor: ProcessPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Whether the pool's processes are up (between the first use and `close`)."""
        return self._executor is not None

    def executor(self) -> ProcessPoolExecutor:
        """The running executor, started now if it is not running."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=_pool_context())
            self.started += 1
        return self._executor

    def close(self) -> None:
        """Stop the worker processes (idempotent; a later run starts a new pool)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __getstate__(self) -> dict[str, object]:
        # A pickled copy (a spawned DataLoader worker) gets no processes: it starts its own if it may.
        return {"workers": self.workers, "started": 0, "_executor": None}


def run_tasks(tasks: Iterable[Task], workers: int, pool: WorkerPool | None = None) -> Iterator[PartResult]:
    """Run tasks in order; with workers, keep at most ``2 * workers`` parts in flight (bounded memory).

    Args:
        tasks: The parts to sample.
        workers: Worker processes (0: in this process).
        pool: A long-lived pool to run them on (kept running afterwards); ``None``: a pool for this run only.

    Raises:
        SamplingError: A worker process died (killed, or could not start).
    """
    if workers > 0 and multiprocessing.current_process().daemon:
        # A daemonic process (e.g. a torch DataLoader worker) may not start children; the result does not
        # depend on the worker count, so sample in this process instead of failing.
        logger.debug("sampling in-process: a daemonic process cannot start %d sampler worker(s)", workers)
        workers = 0
    if workers <= 0:
        for task in tasks:
            yield sample_part(task)
        return
    owned = pool is None
    executor = (
        ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())
        if pool is None
        else pool.executor()
    )
    pending: deque[Future[PartResult]] = deque()
    iterator = iter(tasks)
    try:
        for task in iterator:
            pending.append(executor.submit(_sample_part_in_worker, task))
            if len(pending) >= 2 * workers:
                break
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool as exc:
                if pool is not None:
                    pool.close()  # the next run starts a fresh pool
                raise SamplingError(
                    f"a sampler worker process died ({exc}): it was killed (out of memory?) or could not "
                    f'start (a script that samples with workers needs an `if __name__ == "__main__":` '
                    f"guard); lower workers, or use workers=0"
                ) from exc
            task = next(iterator, None)
            if task is not None:
                pending.append(executor.submit(_sample_part_in_worker, task))
            yield result
    finally:
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)
        else:
            # A kept pool: drop this run's queued parts (a consumer that stopped early wants none of them).
            for future in pending:
                future.cancel()
