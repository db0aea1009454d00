"""Issue #10 "Why" 8: every user mistake gets exit 1 or 2 and a message naming the field, never an
"internal error" or a traceback. Each case is a real file (mixture, dataset, pyproject.toml, fit report)
and a real subprocess of `fasttok-preflight` / `fasttok`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.testing import write_lerobot_dataset

BIN = Path(sys.executable).parent
PREFLIGHT = [str(BIN / "fasttok-preflight")]
FASTTOK = [str(BIN / "fasttok")]


def run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    env["HF_LEROBOT_HOME"] = str(cwd / "hf_home")
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, errors="replace", timeout=timeout
    )


def assert_clear(proc: subprocess.CompletedProcess[str], status: tuple[int, ...], *words: str) -> str:
    """Exit ``status``, no traceback / internal error, and every word of ``words`` in the output."""
    output = proc.stdout + proc.stderr
    assert proc.returncode in status, output
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    for word in words:
        assert word in output, f"{word!r} not in {output}"
    return output


# ----------------------------------------------------------------------------------------- mixtures
@dataclass(frozen=True)
class MixtureCase:
    """A mixture text (``{ds}`` is the path of a real dataset) and the words its message must hold."""

    text: str
    words: tuple[str, ...]
    status: tuple[int, ...] = (1, 2)
    extra_files: dict[str, str] = field(default_factory=dict)


def _entry(**fields: Any) -> str:
    entry = {"repo_id": "org/a", "root": "{ds}", **fields}
    return json.dumps({"datasets": [entry]})


MIXTURE_CASES = {
    "5000-digit weight": MixtureCase(
        '{"datasets": [{"repo_id": "org/a", "root": "{ds}", "weight": ' + "7" * 5000 + "}]}",
        ("5000 digits", "line 1"),
        (2,),
    ),
    "5000-digit chunk_size": MixtureCase(
        '{"chunk_size": ' + "9" * 5000 + ', "datasets": [{"repo_id": "org/a", "root": "{ds}"}]}',
        ("5000 digits",),
        (2,),
    ),
    "root ~nosuchuser": MixtureCase(_entry(root="~nosuchuser_fasttok/x"), ("root", "~nosuchuser_fasttok")),
    "root longer than NAME_MAX": MixtureCase(_entry(root="r" * 300), ("cannot be accessed", "root")),
    "root with NUL": MixtureCase(_entry(root="a\u0000b"), ("root", "NUL")),
    "700-deep lists": MixtureCase(
        '{"datasets": [{"repo_id": "org/a", "root": "{ds}", "x": ' + "[" * 700 + "]" * 700 + "}]}",
        ("nested more than 100 levels",),
        (2,),
    ),
    "700-deep objects": MixtureCase(
        '{"datasets": [{"repo_id": "org/a", "root": "{ds}", "x": ' + '{"a": ' * 700 + "1" + "}" * 700 + "}]}",
        ("nested more than 100 levels",),
        (2,),
    ),
    "NUL in $ref": MixtureCase('{"datasets": [{"$ref": "a\\u0000b.json"}]}', ("$ref", "NUL")),
    "$ref ~nosuchuser": MixtureCase(
        '{"datasets": [{"$ref": "~nosuchuser_fasttok/x.json"}]}', ("$ref", "no known user")
    ),
    "max_action_dim 99999999999": MixtureCase(
        '{"max_action_dim": 99999999999, "datasets": [{"repo_id": "org/a", "root": "{ds}"}]}',
        ("max_action_dim must be at most 4096",),
    ),
    "1500-file $ref chain": MixtureCase(
        '{"datasets": [{"$ref": "r0.json"}]}',
        ("$ref includes nest more than 32 files deep",),
        (2,),
        {f"r{i}.json": json.dumps({"$ref": f"r{i + 1}.json"}) for i in range(1500)},
    ),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mistakes") / "ds"
    write_lerobot_dataset(root, episode_lengths=(200, 220), action_dim=3, control_mode="pos")
    return root


@pytest.mark.parametrize("case", list(MIXTURE_CASES.values()), ids=list(MIXTURE_CASES))
def test_mixture_mistakes_get_a_clear_error(case: MixtureCase, dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(case.text.replace("{ds}", str(dataset)))
    for name, text in case.extra_files.items():
        (tmp_path / name).write_text(text)
    assert_clear(run([*PREFLIGHT, "m.json"], tmp_path), case.status, *case.words)


@pytest.mark.parametrize(
    ("argument", "words"),
    [
        ("~nosuchuser_fasttok/m.json", ("names no known user",)),
        ("r" * 300 + "/m.json", ("File name too long",)),
        ("/dev/null", ("not a regular file",)),
        (".", ("a directory",)),
    ],
)
def test_mixture_path_mistakes_on_the_command_line(
    argument: str, words: tuple[str, ...], tmp_path: Path
) -> None:
    for command in (PREFLIGHT, [*FASTTOK, "fit"]):
        extra = ["--out", "tok"] if command is not PREFLIGHT else []
        assert_clear(run([*command, argument, *extra], tmp_path), (2,), *words)
    assert not (tmp_path / "tok").exists()


def test_a_lone_surrogate_in_a_repo_id_keeps_the_whole_report(tmp_path: Path) -> None:
    # Before: UnicodeEncodeError on stdout, and not a line of the report was printed.
    (tmp_path / "m.json").write_text(
        '{"datasets": [{"repo_id": "org/\\ud800a", "root": "gone"}, {"repo_id": "org/b", "root": "nope"}]}'
    )
    for fmt in ("text", "github", "junit", "json", "sarif"):
        proc = run([*PREFLIGHT, "m.json", "--format", fmt], tmp_path)
        output = assert_clear(proc, (1,), "FT301")
        assert "\\ud800" in output, (fmt, output)


# ----------------------------------------------------------------------------------------- datasets
def _data_files(root: Path) -> list[Path]:
    return sorted((root / "data").rglob("*.parquet"))


def _drop(column: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for path in _data_files(root):
            pq.write_table(pq.read_table(path).drop_columns([column]), path)

    return mutate


def _string_timestamps(root: Path) -> None:
    for path in _data_files(root):
        table = pq.read_table(path)
        index = table.schema.get_field_index("timestamp")
        strings = pa.array([f"{t:.4f}" for t in table["timestamp"].to_pylist()])
        pq.write_table(table.set_column(index, "timestamp", strings), path)


def _info(**fields: Any) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / "meta" / "info.json"
        info = json.loads(path.read_text())
        info.update(fields)
        path.write_text(json.dumps(info))

    return mutate


def _episode_row(**fields: Any) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / "meta" / "episodes.jsonl"
        lines = path.read_text().splitlines()
        row = json.loads(lines[1])
        row.update(fields)
        lines[1] = json.dumps(row)
        path.write_text("\n".join(lines) + "\n")

    return mutate


def _not_utf8_episodes(root: Path) -> None:
    path = root / "meta" / "episodes.jsonl"
    path.write_bytes(path.read_bytes() + b'{"note": "caf\xe9"}\n')


def _huge_number_in_info(root: Path) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps(info)[:-1] + ', "extra": ' + "1" * 5000 + "}")


# (version, mutation, command ("preflight" or "fit"), words of the message)
DATASET_CASES: dict[str, tuple[str, Callable[[Path], None], str, tuple[str, ...]]] = {
    "v3 data without action": ("v3.0", _drop("action"), "fit", ("no 'action' column", "action_key")),
    "v2 data without action": ("v2.1", _drop("action"), "fit", ("no 'action' column",)),
    "v3 data without timestamp": ("v3.0", _drop("timestamp"), "fit", ("no 'timestamp' column",)),
    "v2 data without episode_index": ("v2.1", _drop("episode_index"), "fit", ("no 'episode_index' column",)),
    "string timestamps": ("v3.0", _string_timestamps, "fit", ("'timestamp' holds string",)),
    "data_path 5 (v3)": ("v3.0", _info(data_path=5), "preflight", ("data_path is 5", "template")),
    "data_path 5 (v2)": ("v2.1", _info(data_path=5), "preflight", ("data_path is 5",)),
    "data_path {x.y}": ("v2.1", _info(data_path="{episode_index.x}"), "preflight", ("data_path",)),
    "episode index 10**30": (
        "v2.1",
        _episode_row(episode_index=10**30),
        "preflight",
        ("episodes.jsonl line 2", "episode_index"),
    ),
    "episode length 10**30": ("v2.1", _episode_row(length=10**30), "preflight", ("line 2", "length")),
    "episodes.jsonl not UTF-8": ("v2.1", _not_utf8_episodes, "preflight", ("episodes.jsonl", "UTF-8")),
    "5000-digit number in info.json": (
        "v3.0",
        _huge_number_in_info,
        "preflight",
        ("info.json holds a number with more digits",),
    ),
}


@pytest.mark.parametrize("case", list(DATASET_CASES.values()), ids=list(DATASET_CASES))
def test_dataset_mistakes_get_a_dataset_error(
    case: tuple[str, Callable[[Path], None], str, tuple[str, ...]], tmp_path: Path
) -> None:
    version, mutate, command, words = case
    write_lerobot_dataset(
        tmp_path / "ds", version=version, episode_lengths=(200, 220), action_dim=3, control_mode="pos"
    )
    mutate(tmp_path / "ds")
    (tmp_path / "m.json").write_text(json.dumps({"datasets": [{"repo_id": "org/a", "root": "ds"}]}))
    if command == "preflight":
        proc = run([*PREFLIGHT, "m.json"], tmp_path)
    else:
        proc = run([*FASTTOK, "fit", "m.json", "--out", "tok", "--total-chunks", "200"], tmp_path)
    assert_clear(proc, (1,), "org/a", *words)
    assert not (tmp_path / "tok").exists()


# ------------------------------------------------------------------------ pyproject.toml and flags
PYPROJECT_CASES = {
    "tool = 5": ("tool = 5\n", ("tool must be a table",)),
    "tool.fasttok = 5": ("[tool]\nfasttok = 5\n", ("tool.fasttok must be a table",)),
    "not UTF-8": (b"# caf\xe9\n[tool.fasttok.preflight]\nstrict = true\n", ("not UTF-8",)),
    "max_action_dim too large": (
        "[tool.fasttok.preflight]\nmax_action_dim = 99999999999\n",
        ("max_action_dim must be at most 4096",),
    ),
}


@pytest.mark.parametrize("case", list(PYPROJECT_CASES.values()), ids=list(PYPROJECT_CASES))
def test_pyproject_mistakes_are_usage_errors(
    case: tuple[str | bytes, tuple[str, ...]], dataset: Path, tmp_path: Path
) -> None:
    content, words = case
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "m.json").write_text(_entry().replace("{ds}", str(dataset)))
    assert_clear(run([*PREFLIGHT, "m.json"], tmp_path), (2,), "pyproject.toml", *words)


FLAG_CASES = {
    "fit --seed 10**23": (
        ["fit", "m.json", "--out", "tok", "--seed", str(10**23)],
        ("seed must be at most",),
    ),
    "fit --max-action-dim 99999999999": (
        ["fit", "m.json", "--out", "tok", "--max-action-dim", "99999999999"],
        ("max_action_dim must be at most 4096",),
    ),
    "preflight --max-action-dim 99999999999": (
        ["--max-action-dim", "99999999999"],
        ("max_action_dim must be at most 4096",),
    ),
}


@pytest.mark.parametrize("case", list(FLAG_CASES.values()), ids=list(FLAG_CASES))
def test_out_of_range_flags_are_usage_errors(
    case: tuple[list[str], tuple[str, ...]], dataset: Path, tmp_path: Path
) -> None:
    args, words = case
    (tmp_path / "m.json").write_text(_entry().replace("{ds}", str(dataset)))
    command = [*FASTTOK, *args] if args[0] == "fit" else [*PREFLIGHT, "m.json", *args]
    assert_clear(run(command, tmp_path), (2,), *words)
    assert not (tmp_path / "tok").exists()


# ------------------------------------------------------------------------------ fasttok inspect
@pytest.fixture(scope="module")
def fitted(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fitted")
    (work / "m.json").write_text(_entry().replace("{ds}", str(dataset)))
    proc = run([*FASTTOK, "fit", "m.json", "--out", "tok", "--total-chunks", "300", "--quiet"], work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "tok"


_WRONG = {"string": "x", "list": [1], "null": None, "object": {"a": 1}, "bool": True, "number": -5}
# Nested fields: (path into the report, value).
_NESTED: dict[str, tuple[tuple[Any, ...], Any]] = {
    "heads[0] not an object": (("heads", 0), 5),
    "heads[0].key number": (("heads", 0, "key"), 5),
    "heads[0].entries string": (("heads", 0, "entries"), "ab"),
    "heads[0].histogram string": (("heads", 0, "histogram"), "xy"),
    "heads[0].token_lengths.mean string": (("heads", 0, "token_lengths", "mean"), "x"),
    "heads[0].roundtrip_mse string": (("heads", 0, "roundtrip_mse"), "x"),
    "heads[0] unknown key": (("heads", 0, "zz"), 1),
    "datasets[0] string": (("datasets", 0), "x"),
    "datasets[0].fit string": (("datasets", 0, "fit"), "x"),
    "datasets[0].error number": (("datasets", 0, "error"), 5),
    "token_lengths.p50 string": (("token_lengths", "p50"), "x"),
    "tokenizer.scale string": (("tokenizer", "scale"), "x"),
    "timings.fit string": (("timings", "fit"), "x"),
    "warnings [5]": (("warnings",), [5]),
    "histogram_edges [x]": (("histogram_edges",), ["x"]),
}


def _malformed_reports(base: dict[str, Any]) -> dict[str, Any]:
    """Every top-level field set to every wrong JSON kind, the nested cases, and broken files."""
    variants: dict[str, Any] = {}
    for key in base:
        for kind, value in _WRONG.items():
            variants[f"{key} = {kind}"] = {**base, key: value}
    for name, (path, value) in _NESTED.items():
        report = copy.deepcopy(base)
        target = report
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        variants[name] = report
    for key in ("fit_fingerprint", "heads", "datasets", "tokenizer"):
        variants[f"{key} missing"] = {k: v for k, v in base.items() if k != key}
    variants["a list"] = [base]
    variants["not JSON"] = "{not json"
    variants["5000-digit number"] = json.dumps(base)[:-1] + ', "x": ' + "1" * 5000 + "}"
    return variants


def _inspect_in_process(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from fasttok_plugin.cli import main

    status = main(["inspect", str(folder)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_malformed_fit_reports_never_give_an_internal_error(
    fitted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole table runs through the CLI's own main() (a subprocess each would take minutes); a sample
    # of it runs as real subprocesses below.
    monkeypatch.delenv("FASTTOK_DEBUG", raising=False)
    base = json.loads((fitted / "fit_report.json").read_text())
    variants = _malformed_reports(base)
    assert len(variants) > 200
    refused = 0
    for name, report in variants.items():
        folder = tmp_path / "tok"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(fitted, folder)
        text = report if isinstance(report, str) else json.dumps(report)
        (folder / "fit_report.json").write_text(text)
        status, output = _inspect_in_process(folder, capsys)
        assert "Traceback" not in output, (name, output)
        assert "internal error" not in output, (name, output)
        assert status in (0, 2), (name, output)
        if status == 2:
            refused += 1
            assert "fit_report.json" in output or "malformed fit report" in output, (name, output)
    # Most wrong kinds are refused; a few are harmless (a string fingerprint of another length, ...).
    assert refused > 150


SUBPROCESS_REPORT_CASES = {
    "timings = string": "timings must be an object of numbers",
    "tokenizer = null": "tokenizer must be an object",
    "heads[0].key number": "heads[0].key must be a string",
    "peak_memory_mb = null": "peak_memory_mb must be a number",
    "heads missing": "heads",
    "not JSON": "fit_report.json",
}


@pytest.mark.parametrize("name", list(SUBPROCESS_REPORT_CASES))
def test_malformed_fit_report_in_a_real_inspect(name: str, fitted: Path, tmp_path: Path) -> None:
    base = json.loads((fitted / "fit_report.json").read_text())
    report = _malformed_reports(base)[name]
    folder = tmp_path / "tok"
    shutil.copytree(fitted, folder)
    (folder / "fit_report.json").write_text(report if isinstance(report, str) else json.dumps(report))
    assert_clear(run([*FASTTOK, "inspect", str(folder)], tmp_path), (2,), SUBPROCESS_REPORT_CASES[name])


def test_a_malformed_report_names_the_field(fitted: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    shutil.copytree(fitted, folder)
    report = json.loads((folder / "fit_report.json").read_text())
    report["heads"][0]["truncation_rate"] = "high"
    (folder / "fit_report.json").write_text(json.dumps(report))
    output = assert_clear(run([*FASTTOK, "inspect", str(folder)], tmp_path), (2,))
    assert "heads[0].truncation_rate must be a number or null, got 'high'" in output


def test_fasttok_inspect_prints_names_from_user_files_escaped(fitted: Path, tmp_path: Path) -> None:
    # `fasttok`'s own output uses the preflight's escaping rule: a dataset name holding a newline and a
    # GitHub Actions command cannot forge a line of the report.
    folder = tmp_path / "tok"
    shutil.copytree(fitted, folder)
    report = json.loads((folder / "fit_report.json").read_text())
    report["datasets"][0]["name"] = "lab/x\n::error::forged"
    (folder / "fit_report.json").write_text(json.dumps(report))
    proc = run([*FASTTOK, "inspect", str(folder)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lab/x\\n::error::forged" in proc.stdout
    assert not any(line.startswith("::error::") for line in proc.stdout.splitlines())
