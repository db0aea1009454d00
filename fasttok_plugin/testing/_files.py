"""Atomic writers for the JSON, JSON-lines and parquet files of a test dataset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fasttok_plugin.atomic import write_bytes_atomic, write_file_atomic

__all__ = ["write_json", "write_jsonl", "write_parquet"]


def write_json(path: Path, document: Any, *, indent: int | None = 4) -> None:
    """Write ``document`` as JSON (NaN/Infinity allowed: tests write broken stats on purpose)."""
    write_bytes_atomic(path, (json.dumps(document, indent=indent, allow_nan=True) + "\n").encode())


def write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    """Write one JSON document per line."""
    text = "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows)
    write_bytes_atomic(path, text.encode())


def write_parquet(path: Path, table: pa.Table) -> None:
    """Write a parquet table."""
    write_file_atomic(path, lambda tmp: pq.write_table(table, tmp))
