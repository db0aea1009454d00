"""The package's layout rules (DESIGN §15), pinned so they stay true as the package grows.

One idea per module (at most ~400 lines), functions that fit on a screen (~80 lines), a flat public
surface per package (``__all__``), one error root, and arrows that only point down: the core never
imports Lightning or pluggy at import time, and the preflight never imports torch.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import fasttok_plugin
from fasttok_plugin import errors

PACKAGE = Path(fasttok_plugin.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
CORE = [
    "mixture",
    "lerobot",
    "resolve",
    "heads",
    "stats",
    "normalize",
    "sampling",
    "codec",
    "fit",
    "fitting",
    "decode",
]


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_holds_one_idea_of_at_most_400_lines(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it by idea"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_function_fits_on_a_screen(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=_name)
def test_every_package_declares_its_public_surface(init: Path) -> None:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    names = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if hasattr(t, "id")
    }
    assert "__all__" in names, f"{_name(init)} has no __all__"


def test_every_public_error_has_the_one_root() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert errors.FasttokError in classes
    for cls in classes:
        assert issubclass(cls, errors.FasttokError), cls
    # No public exception class is defined outside errors.py.
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and path.name != "errors.py":
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not bases & {"Exception", "ValueError", "RuntimeError"}, (
                    f"{_name(path)}: {node.name} is a public error outside fasttok_plugin/errors.py"
                )


def test_public_errors_are_documented_in_errors_module() -> None:
    for name in errors.__all__:
        assert inspect.getdoc(getattr(errors, name)), name


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_core_never_imports_lightning_or_pluggy_at_import_time() -> None:
    loaded = _imported_after("; ".join(f"import fasttok_plugin.{name}" for name in CORE))
    assert "pytorch_lightning" not in loaded
    assert "lightning" not in loaded
    assert "pluggy" not in loaded
    assert "fasttok_plugin.testing" not in loaded


def test_the_preflight_never_imports_torch_or_the_sampler_pool() -> None:
    loaded = _imported_after("import fasttok_plugin.preflight, fasttok_plugin.preflight.cli")
    assert "torch" not in loaded
    assert "pytorch_lightning" not in loaded
    # The preflight shares the sampler's chunk-start rule, not its worker pool (a hook must feel instant).
    assert "multiprocessing" not in loaded
