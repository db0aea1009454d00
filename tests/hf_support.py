"""Run a script that loads tokenizer folders through ``transformers.AutoProcessor``, offline, in a subprocess.

A subprocess, so the processor module each folder ships is imported by transformers exactly as LeRobot or
openpi would import it (``trust_remote_code=True``), with its own module cache and no hub access.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_offline_processor(script: str, args: list[str], tmp_path: Path) -> Any:
    """Run ``python -c script *args`` offline (a private HF home and module cache under ``tmp_path``).

    Returns:
        The JSON document the script prints on its last line of output.
    """
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
