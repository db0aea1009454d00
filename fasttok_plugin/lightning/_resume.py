"""What the callback keeps in a checkpoint, and the check that a resumed run uses the same tokenizer.

A model learned the tokens of one tokenizer: resuming it with a tokenizer of another fingerprint would
silently feed it other tokens, so that is an error (a warning under ``on_mismatch="refit"``).

Lightning restores the model's weights *before* it calls a callback's ``on_load_checkpoint`` /
``load_state_dict`` (``_CheckpointConnector._restore_modules_and_callbacks``: model, datamodule,
callbacks), so the check runs from a ``load_state_dict`` pre-hook on the LightningModule instead: the
checkpoint is already in memory then and no weight has been copied yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch.utils.hooks import RemovableHandle

from fasttok_plugin.errors import TokenizerMismatchError

__all__ = ["ResumeGuard", "check_before_weights_load", "check_resumed", "checkpoint_state", "restoring_state"]


def checkpoint_state(fingerprint: str, heads_fingerprint: str, tokenizer_dir: Path) -> dict[str, Any]:
    """The callback's ``state_dict``: the fingerprints of the tokenizer the model trains with."""
    return {
        "fingerprint": fingerprint,
        "norm_heads_fingerprint": heads_fingerprint,
        "tokenizer_dir": str(tokenizer_dir),
    }


def check_resumed(
    state: Mapping[str, Any],
    *,
    fingerprint: str,
    heads_fingerprint: str,
    tokenizer_dir: Path,
    on_mismatch: str,
) -> None:
    """Compare a resumed checkpoint's `checkpoint_state` with this run's tokenizer.

    Raises:
        TokenizerMismatchError: The fingerprints differ and ``on_mismatch="error"``.
    """
    old = state.get("fingerprint")
    if old is None or old == fingerprint:
        return
    old_dir = state.get("tokenizer_dir", "?")
    heads_changed = state.get("norm_heads_fingerprint") not in (None, heads_fingerprint)
    what = (
        "the mixture's norm heads changed" if heads_changed else "the tokenizer or sampling settings changed"
    )
    message = (
        f"the checkpoint being resumed was trained with tokenizer fingerprint {old} ({old_dir}), but "
        f"this run gives fingerprint {fingerprint} ({tokenizer_dir}): {what}, so the model learned other "
        "tokens. Fix: resume with the original mixture and settings, or start a fresh run"
    )
    if on_mismatch == "refit":
        rank_zero_warn(f"FastTokenizerCallback: {message} (continuing because on_mismatch='refit')")
        return
    raise TokenizerMismatchError(message, expected=fingerprint, found=old, tokenizer_dir=tokenizer_dir)


def restoring_state(trainer: pl.Trainer | None, state_key: str) -> Mapping[str, Any] | None:
    """The callback's state in the checkpoint ``trainer`` is restoring right now (None if none).

    Lightning keeps the checkpoint it restores in ``trainer._checkpoint_connector._loaded_checkpoint``
    between loading the file and restoring the modules; there is no public accessor, so a missing
    attribute means "unknown" and the late check in the callback's ``load_state_dict`` still runs.
    """
    connector = getattr(trainer, "_checkpoint_connector", None)
    checkpoint = getattr(connector, "_loaded_checkpoint", None)
    if not isinstance(checkpoint, Mapping):
        return None
    state = checkpoint.get("callbacks", {}).get(state_key)
    return state if isinstance(state, Mapping) else None


def check_before_weights_load(
    pl_module: pl.LightningModule, check: Callable[[Mapping[str, Any]], None], state_key: str
) -> RemovableHandle:
    """Run ``check(callback_state)`` when a checkpoint's weights are about to load into ``pl_module``.

    Returns:
        The hook's handle (``remove()`` it in ``teardown``).
    """

    def hook(module: Any, state_dict: Any, prefix: str, *args: Any) -> None:
        state = restoring_state(getattr(pl_module, "_trainer", None), state_key)
        if state is not None:
            check(state)

    register = getattr(pl_module, "register_load_state_dict_pre_hook", None)
    if register is not None:  # the public name of recent torch versions
        return register(hook)
    return pl_module._register_load_state_dict_pre_hook(hook, with_module=True)


class ResumeGuard:
    """The callback's resume check: the checkpoint's state, whether it was checked, the model's pre-hook."""

    def __init__(self, state_key: str, on_mismatch: str, tokenizer_dir: Path) -> None:
        self.state_key = state_key
        self.on_mismatch = on_mismatch
        self.tokenizer_dir = tokenizer_dir
        self.state: dict[str, Any] | None = None
        self.checked = False
        self.current: tuple[str, str] | None = None  # (fit fingerprint, heads fingerprint) of this run
        self._hook: RemovableHandle | None = None

    def watch(self, pl_module: pl.LightningModule, fingerprint: str, heads_fingerprint: str) -> None:
        """Know this run's fingerprints; check a checkpoint as soon as its weights are about to load."""
        self.current = (fingerprint, heads_fingerprint)
        if self._hook is None:
            # Lightning loads the weights before the callback's load_state_dict: check from a pre-hook.
            self._hook = check_before_weights_load(pl_module, self.restore, self.state_key)
        self.check()

    def unwatch(self) -> None:
        """Remove the model's pre-hook (``teardown``)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def restore(self, state: Mapping[str, Any]) -> None:
        """A checkpoint's state of the callback: check it (once) against this run."""
        state = dict(state)
        if state == self.state and self.checked:
            return  # the pre-hook already checked this very state before the weights loaded
        self.state, self.checked = state, False
        self.check()

    def check(self) -> None:
        """`check_resumed` once both the checkpoint's state and this run's fingerprints are known."""
        if self.checked or self.state is None or self.current is None:
            return
        self.checked = True
        check_resumed(
            self.state,
            fingerprint=self.current[0],
            heads_fingerprint=self.current[1],
            tokenizer_dir=self.tokenizer_dir,
            on_mismatch=self.on_mismatch,
        )
