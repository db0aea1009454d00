"""Defaults shared by the mixture parser, the CLIs and the Lightning integration."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_ACTION_DIM = 32
DEFAULT_CHUNK_SIZE = 50


def lerobot_home() -> Path:
    """Return the folder where LeRobot keeps datasets (`$HF_LEROBOT_HOME`, else the Hugging Face cache)."""
    env = os.environ.get("HF_LEROBOT_HOME")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/huggingface/lerobot").expanduser()
