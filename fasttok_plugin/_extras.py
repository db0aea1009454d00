"""Which extra brings which dependency, and the one "install fasttok-plugin[...]" message.

The base install is what ``fasttok-preflight`` needs (numpy, pyarrow, pluggy); fitting, Lightning, the
Hugging Face processor and plots come with extras (``pyproject.toml``). A missing extra surfaces as a
`ModuleNotFoundError` deep in an import; :func:`missing_extra` turns it into a
:class:`~fasttok_plugin.errors.MissingExtraError` that says what to install.
"""

from __future__ import annotations

from fasttok_plugin.errors import MissingExtraError

__all__ = ["EXTRA_OF_MODULE", "install_command", "missing_extra"]

#: Top-level module -> the extra of ``pyproject.toml`` that installs it (keep in step with that file).
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "fit",
    "scipy": "fit",
    "tokenizers": "fit",
    "tqdm": "fit",
    "filelock": "fit",
    "pytorch_lightning": "lightning",
    "lightning_utilities": "lightning",
    "transformers": "hf",
    "matplotlib": "plot",
}


def install_command(extra: str) -> str:
    """The pip command that installs ``extra`` (quoted so shells do not expand the brackets)."""
    return f"pip install 'fasttok-plugin[{extra}]'"


def missing_extra(exc: BaseException, feature: str | None = None) -> MissingExtraError | None:
    """The `MissingExtraError` behind ``exc``, or ``None`` when ``exc`` is not a missing extra.

    Follows ``__cause__``/``__context__``, so a missing module re-raised as another error is still found.

    Args:
        exc: The exception that escaped an import or a command.
        feature: What needed it, for the message (e.g. ``fasttok fit``); default: the module's role.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingExtraError):
            return current
        if isinstance(current, ModuleNotFoundError) and current.name:
            module = current.name.split(".")[0]
            extra = EXTRA_OF_MODULE.get(module)
            if extra is not None:
                what = feature or f"this feature of fasttok-plugin (it imports {module})"
                return MissingExtraError(
                    f"{what} needs {module!r}, which the base install leaves out; "
                    f"install the {extra!r} extra: {install_command(extra)}",
                    module=module,
                    extra=extra,
                )
        current = current.__cause__ or current.__context__
    return None
