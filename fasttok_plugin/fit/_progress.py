"""How a fit shows where its time goes: wall time per phase (for the report) and tqdm progress bars."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any


class PhaseClock:
    """Accumulates wall time per phase (``sample``, ``normalize``, ``fit`` ...), in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @contextlib.contextmanager
    def phase_excluding(self, name: str, nested: Iterable[str]) -> Iterator[None]:
        """Time the body as ``name`` minus the time the ``nested`` phases gained meanwhile.

        The fit and the evaluation pull their batches from the (lazily) sampling, normalizing plan: that
        time is already counted under ``sample`` / ``normalize`` and must not be counted twice.
        """
        nested = tuple(nested)
        before = dict(self.seconds)
        start = time.perf_counter()
        yield  # a failed phase records nothing: there is no report to put it in
        elapsed = time.perf_counter() - start
        inside = sum(self.seconds.get(k, 0.0) - before.get(k, 0.0) for k in nested)
        self.seconds[name] = elapsed - inside


def progress_bar(progress: bool, total: int | None, desc: str, unit: str = "chunk") -> Any:
    """A tqdm bar on stderr (disabled unless ``progress``)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=True, file=sys.stderr)


def bars_wanted(progress: bool | None, host_shows_bars: bool) -> bool:
    """Whether to draw bars: ``progress`` if set, else when the host (the trainer) draws its own and stderr
    is a terminal (bars in a log file are noise)."""
    if progress is not None:
        return progress
    return host_shows_bars and sys.stderr.isatty()


class ElapsedBar:
    """A bar for a phase with no countable steps (the BPE training): it shows the elapsed time, redrawn
    twice a second by a daemon thread until :meth:`close`."""

    def __init__(self, progress: bool, desc: str, interval: float = 0.5) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=None,
            desc=desc,
            bar_format="{desc}: {elapsed} elapsed",
            disable=not progress,
            leave=True,
            file=sys.stderr,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if progress:
            self._thread = threading.Thread(target=self._tick, args=(interval,), daemon=True)
            self._thread.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._bar.refresh()

    def close(self) -> None:
        """Stop redrawing and leave the final elapsed time on screen (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._bar.close()
