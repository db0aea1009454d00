"""What the callback keeps in a checkpoint, and the check that a resumed run uses the same tokenizer.

A model learned the tokens of one tokenizer: resuming it with a tokenizer of another fingerprint would
silently feed it other tokens, so that is an error (a warning under ``on_mismatch="refit"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from fasttok_plugin.errors import TokenizerMismatchError

__all__ = ["check_resumed", "checkpoint_state"]


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
