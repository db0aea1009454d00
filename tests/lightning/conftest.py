"""Fixtures of the Lightning tests: small real mixtures and spies on fitting and sampling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lightning_support import Mixture, Spy, install_spy, mixture_factory


@pytest.fixture
def make_mixture(tmp_path: Path) -> Callable[..., Mixture]:
    """Factory ``make_mixture(robots=("arm", "base"), weights=None, name="mixture.json", **top_level)``."""
    return mixture_factory(tmp_path)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Counters on ``fitting.fit_tokenizer`` and ``ChunkSampler.sample`` (behaviour unchanged)."""
    return install_spy(monkeypatch)
