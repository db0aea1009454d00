"""Whatever a mixture file holds, the CLI answers with exit 0, 1 or 2 and a message, never a traceback."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fasttok_plugin.mixture import ENTRY_KEYS
from fasttok_plugin.testing import write_lerobot_dataset

CLI = Path(sys.executable).parent / "fasttok-preflight"
COMMAND = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "fasttok_plugin.preflight.cli"]

# Each example is a subprocess (~0.3 s): keep the budget modest.
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one real dataset (``datasets/real``) that generated entries may point at."""
    root = tmp_path_factory.mktemp("robust")
    write_lerobot_dataset(root / "datasets" / "real", episode_lengths=(30, 40), action_dim=3)
    return root


def run_cli_on(workdir: Path, content: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
    path = workdir / "mixture.json"
    path.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    env["HF_LEROBOT_HOME"] = str(workdir / "home")
    return subprocess.run(
        [*COMMAND, str(path), *extra],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )


def assert_clean_exit(proc: subprocess.CompletedProcess[str]) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1, 2), output
    assert output.strip(), "the CLI must always say something"
    assert "Traceback" not in output, output
    assert "internal error" not in output, output


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

field_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3), st.just({"$ref": "missing.json"}))
# Every key the parser knows plus a typo of one, so the property test follows the schema as it grows.
entry_fields = st.sampled_from([*ENTRY_KEYS, "robot_typ"])


@st.composite
def mixture_documents(draw: st.DrawFn) -> Any:
    """Mixtures that are almost right: real or missing roots, and fields of every wrong type."""
    entries = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        entry: dict[str, Any] = {
            "repo_id": "org/real",
            "root": draw(st.sampled_from(["datasets/real", "nowhere"])),
        }
        entry.update(draw(st.dictionaries(entry_fields, field_values, max_size=3)))
        if draw(st.booleans()):
            entry = draw(json_values)  # an entry that is not an entry at all
        entries.append(entry)
    top: dict[str, Any] = {"datasets": entries}
    for key in ("weights", "action_freq", "require_non_empty_robot_type", "chunk_size", "max_action_dim"):
        if draw(st.booleans()):
            top[key] = draw(field_values)
    if draw(st.booleans()):
        top = {"dataset_mixture": top}
    return draw(st.one_of(st.just(top), json_values)) if draw(st.integers(0, 4)) == 0 else top


def _dump(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


@PROPERTY
@given(document=mixture_documents())
def test_wrongly_typed_mixtures_never_crash(workdir: Path, document: Any) -> None:
    assert_clean_exit(run_cli_on(workdir, _dump(document)))


@PROPERTY
@given(
    document=mixture_documents(),
    cut=st.floats(min_value=0.0, max_value=1.0),
    noise=st.binary(max_size=8),
    fmt=st.sampled_from(["text", "json", "github", "junit", "sarif"]),
)
def test_truncated_or_garbled_files_never_crash(
    workdir: Path, document: Any, cut: float, noise: bytes, fmt: str
) -> None:
    text = _dump(document)
    content = text[: math.floor(len(text) * cut)] + noise
    assert_clean_exit(run_cli_on(workdir, content, "--format", fmt))
