"""How a fit shows where its time goes: wall time per phase (for the report) and tqdm progress bars."""

from __future__ import annotations

import contextlib
import sys
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
