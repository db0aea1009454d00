"""Every error this package raises, under one root: :class:`FasttokError`.

One family per idea (mixture file, dataset, norm heads, sampling, codec, fit, preflight, tokenizer
mismatch). Where the API promised a builtin base (``ValueError`` for bad input, ``RuntimeError`` for a
mismatch) it stays as the second base, so ``except ValueError`` in users' code keeps working.

Errors cross process boundaries (sampler workers, DDP ranks), so every one pickles with its full
message and fields: :meth:`FasttokError.__reduce__` rebuilds the instance without calling ``__init__``
and restores ``args`` and ``__dict__`` as they were, whatever the subclass's constructor takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.mixture import MixtureProblem
    from fasttok_plugin.preflight.findings import PreflightResult

__all__ = [
    "CodecError",
    "ConventionError",
    "DatasetError",
    "FasttokError",
    "FitError",
    "MissingExtraError",
    "MixtureError",
    "NormHeadsError",
    "OutDirError",
    "PreflightError",
    "PreflightUsageError",
    "SamplingError",
    "StatsError",
    "TokenizerFormatError",
    "TokenizerMismatchError",
    "TransformError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    return error


class FasttokError(Exception):
    """Root of every error raised by fasttok_plugin; catch it to handle them all."""

    def __reduce__(self) -> tuple[Any, ...]:
        # (callable, args, state): pickle restores ``__dict__`` from state, so keyword-only fields and
        # subclasses with any constructor signature round-trip unchanged.
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


class MixtureError(FasttokError, ValueError):
    """A mixture file that cannot be used; lists every problem found, not only the first.

    Attributes:
        problems: All problems found.
        unreadable: ``True`` when the file (or a ``$ref`` target) is missing, not JSON, or a ``$ref`` cycle.
        path: The mixture file, when parsed from a file.
    """

    def __init__(
        self, problems: Iterable[MixtureProblem], *, unreadable: bool = False, path: Path | None = None
    ) -> None:
        self.problems: tuple[MixtureProblem, ...] = tuple(problems)
        self.unreadable = unreadable
        self.path = path
        head = f"mixture file {path}" if path is not None else "mixture"
        count = len(self.problems)
        lines = [f"{head}: {count} problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class DatasetError(FasttokError):
    """A dataset whose metadata or data cannot be used.

    Attributes:
        reason: Stable code: ``root_missing``, ``info_missing``, ``info_invalid``, ``unsupported_version``,
            ``action_key_missing``, ``stats_missing``, ``stats_invalid``, ``episodes_invalid``,
            ``data_missing`` or ``data_invalid``.
        path: The offending file or folder.
        hint: How to fix it.
        dataset: The dataset's name as given by the caller (e.g. ``entry 3 (org/name)``).
        detail: What is wrong, without the dataset/path/hint decoration.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        path: Path | None = None,
        hint: str = "",
        dataset: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.path = path
        self.hint = hint
        self.dataset = dataset
        parts = [f"dataset {dataset}: " if dataset else "", detail]
        if path is not None:
            parts.append(f" [{path}]")
        if hint:
            parts.append(f". Fix: {hint}")
        super().__init__("".join(parts))

    def with_dataset(self, dataset: str | None) -> DatasetError:
        """A copy naming ``dataset`` (used when the caller knows the entry name)."""
        return DatasetError(self.reason, self.detail, path=self.path, hint=self.hint, dataset=dataset)


class MissingExtraError(FasttokError, ImportError):
    """A feature needs a dependency of an extra that is not installed (the base install is the preflight's).

    Attributes:
        module: The top-level module that could not be imported (e.g. ``torch``).
        extra: The extra that brings it (e.g. ``fit``); the message gives the ``pip install`` line.
    """

    def __init__(self, message: str, *, module: str, extra: str) -> None:
        super().__init__(message)
        self.module = module
        self.extra = extra


class NormHeadsError(FasttokError, ValueError):
    """Raised by `NormHeads.raise_for_errors`; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} norm-head error(s):\n{lines}")


class SamplingError(FasttokError, ValueError):
    """Bad sampler input (invalid mixture weights, chunk size, seed); the message names the fix."""


class StatsError(FasttokError, ValueError):
    """Stats from the data cannot be computed as configured (a transform without a key, or of a bad shape)."""


class TransformError(FasttokError, ValueError):
    """An action transform (column selection, relative actions) that is invalid or does not fit a dataset.

    Attributes:
        field: The setting at fault (``"action_index"``, ``"relative_dims"``, ``"relative_exclude"``,
            ``"state_key"``).
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class CodecError(FasttokError, ValueError):
    """Bad input to the codec: non-finite rows, a value range the vocabulary cannot hold, wrong shapes."""


class ConventionError(FasttokError, ValueError):
    """A normalization convention that does not exist or cannot take a field's value; names the fix."""


class TokenizerFormatError(CodecError):
    """A tokenizer directory that cannot be read or whose files disagree with each other."""


class FitError(FasttokError, ValueError):
    """The fit cannot proceed (bad settings, unreadable data, nothing to fit); the message names the fix."""


class OutDirError(FitError):
    """The output directory cannot receive a tokenizer (exists and is not a tokenizer directory)."""


class PreflightError(FasttokError):
    """The preflight found errors; the message lists every finding (errors first).

    Attributes:
        result: The full preflight result (every finding, the checks that ran).
    """

    def __init__(self, result: PreflightResult) -> None:
        self.result = result
        name = str(result.mixture) if result.mixture is not None else "the mixture"
        lines = [f"preflight of {name} failed: {result.summary()}"]
        lines += [f"  {f}" for f in result.findings]
        super().__init__("\n".join(lines))


class PreflightUsageError(FasttokError, ValueError):
    """Bad preflight options or plugins (unknown option, plugin that fails to import ...): CLI exit 2."""


class TokenizerMismatchError(FasttokError, RuntimeError):
    """A tokenizer (in ``tokenizer_dir`` or a resumed checkpoint) was fit for other norm heads or settings.

    Attributes:
        expected: Fingerprint of the current datamodule's heads and the callback's settings.
        found: Fingerprint of the existing tokenizer or checkpoint (``None``: the tokenizer records none).
        tokenizer_dir: The tokenizer folder concerned.
    """

    def __init__(self, message: str, *, expected: str, found: str | None, tokenizer_dir: Path) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.tokenizer_dir = tokenizer_dir
