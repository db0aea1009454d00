"""Lazy public exports (PEP 562): a package names its public objects without importing their modules.

Used where importing everything up front would cost a light caller: ``import fasttok_plugin`` must not
pull in torch, and the preflight imports `fasttok_plugin.sampling.starts` without the worker pool's
multiprocessing machinery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from fasttok_plugin._extras import missing_extra

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
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # The base install is the preflight's: name the extra instead of a bare missing module.
            error = missing_extra(exc, f"fasttok_plugin.{name}" if package == "fasttok_plugin" else name)
            if error is None:
                raise
            raise error from exc
        value = getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", ()), *exports})

    return __getattr__, __dir__
