"""The base install is the preflight's; every other feature names the extra it needs.

Each test runs a fresh interpreter in which the extras' modules cannot be imported (a meta-path finder
answers as pip would after ``pip install fasttok-plugin``: ``No module named ...``), on real datasets.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the base install brings tomli
    import tomli as tomllib

from fasttok_plugin._extras import EXTRA_OF_MODULE, install_command, missing_extra
from fasttok_plugin.errors import MissingExtraError
from fasttok_plugin.testing import make_example_mixture

ROOT = Path(__file__).resolve().parents[1]
# Distribution that brings each module (lightning_utilities comes with pytorch-lightning).
DISTRIBUTION = {
    "torch": "torch",
    "scipy": "scipy",
    "tokenizers": "tokenizers",
    "tqdm": "tqdm",
    "filelock": "filelock",
    "pytorch_lightning": "pytorch-lightning",
    "lightning_utilities": "pytorch-lightning",
    "transformers": "transformers",
    "matplotlib": "matplotlib",
}
ABSENT = """
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NotInstalled())
"""


def run_without(blocked: set[str], code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ABSENT.format(blocked=sorted(blocked)) + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six entries, v2.1 (one without stats.json) and v3.0, written with pyarrow."""
    return make_example_mixture(tmp_path_factory.mktemp("extras"), n_datasets=6)


def test_the_preflight_runs_with_only_the_base_install(example: Path) -> None:
    code = (
        "from fasttok_plugin.preflight.cli import main\n"
        f"status = main([{str(example)!r}, '--format', 'json'])\n"
        f"print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in {sorted(EXTRA_OF_MODULE)!r}))\n"
        "sys.exit(status)\n"
    )
    proc = run_without(set(EXTRA_OF_MODULE), code, example.parent)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout[: proc.stdout.rindex("LOADED")])
    assert document["mixtures"][0]["datasets"] == 6
    assert document["ok"]
    assert proc.stdout.strip().endswith("LOADED []")


def test_fasttok_fit_without_the_fit_extra_says_what_to_install(example: Path, tmp_path: Path) -> None:
    code = (
        "from fasttok_plugin.cli import main\n"
        f"sys.exit(main(['fit', {str(example)!r}, '--out', {str(tmp_path / 'tok')!r}]))\n"
    )
    proc = run_without({"torch", "scipy", "tokenizers"}, code, tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("fasttok: error: fasttok needs '")
    assert line.endswith("install the 'fit' extra: pip install 'fasttok-plugin[fit]'")
    assert not (tmp_path / "tok").exists()


@pytest.mark.parametrize(
    ("name", "blocked", "extra"),
    [
        ("Normalize", {"torch"}, "fit"),
        ("fit_tokenizer", {"tokenizers"}, "fit"),
        ("FastTokenizerCallback", {"pytorch_lightning", "lightning_utilities"}, "lightning"),
    ],
)
def test_the_api_raises_an_import_error_naming_the_extra(name: str, blocked: set[str], extra: str) -> None:
    code = (
        "import fasttok_plugin\n"
        "from fasttok_plugin.errors import MissingExtraError\n"
        "try:\n"
        f"    getattr(fasttok_plugin, {name!r})\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, isinstance(exc, MissingExtraError), exc.extra, exc.module)\n"
        "    print(exc)\n"
    )
    proc = run_without(blocked, code, ROOT)
    assert proc.returncode == 0, proc.stderr
    kind, message = proc.stdout.strip().splitlines()
    assert kind.split()[:3] == ["MissingExtraError", "True", extra]
    assert kind.split()[3] in blocked
    assert message.startswith(f"fasttok_plugin.{name} needs ")
    assert message.endswith(install_command(extra))


def test_missing_extra_follows_the_cause_chain_and_ignores_other_modules() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'scipy.fft'", name="scipy.fft")
        except ModuleNotFoundError as inner:
            raise RuntimeError("codec unavailable") from inner
    except RuntimeError as exc:
        error = missing_extra(exc, "the codec")
    assert isinstance(error, MissingExtraError)
    assert isinstance(error, ImportError)
    assert (error.module, error.extra) == ("scipy", "fit")
    assert str(error) == (
        "the codec needs 'scipy', which the base install leaves out; install the 'fit' extra: "
        "pip install 'fasttok-plugin[fit]'"
    )
    assert missing_extra(ModuleNotFoundError("No module named 'my_plugin'", name="my_plugin")) is None
    assert missing_extra(ValueError("not an import problem")) is None


def test_pyproject_extras_match_the_module_table() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = names(project["dependencies"])
    extras = {key: names(value) for key, value in project["optional-dependencies"].items()}
    # The base install is what the preflight imports: metadata JSON, v3.0 episode tables, plugins.
    assert base == {"numpy", "pyarrow", "pluggy", "tomli"}
    for module, extra in EXTRA_OF_MODULE.items():
        assert DISTRIBUTION[module] in extras[extra], (module, extra)
        assert DISTRIBUTION[module] not in base
    assert "fasttok-plugin" in extras["lightning"]  # [fit] comes with it: the callback fits tokenizers
    # `test` (what the README's commands install) brings everything through `all`.
    all_extras = re.search(r"\[(.*)\]", project["optional-dependencies"]["all"][0]).group(1).split(",")
    assert set(all_extras) == set(EXTRA_OF_MODULE.values())
    assert "fasttok-plugin[all]" in project["optional-dependencies"]["test"]
