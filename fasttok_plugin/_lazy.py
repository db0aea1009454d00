"""Lazy public exports (PEP 562): a package names its public objects without importing their modules.

Used where importing everything up front would cost a light caller: ``import fasttok_plugin`` must not
pull in torch, and the preflight imports `fasttok_plugin.sampling.starts` without the worker pool's
multiprocessing machinery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a module's ``__getattr__`` and ``__dir__`` that import each export on first use.

    Args:
        package: The package's ``__name__`` (for the ``AttributeError`` message).
        exports: Public name -> module that defines it.
        namespace: The package's ``globals()``; a resolved name is cached there, so the next lookup
            skips ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", ()), *exports})

    return __getattr__, __dir__
