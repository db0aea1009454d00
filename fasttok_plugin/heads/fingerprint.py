"""The norm-heads fingerprint: one sha256 that changes with anything normalization depends on.

It covers the typed head keys, ``max_action_dim``, the native dims, the stats bytes, which entry feeds
which head, the entry names and a non-default head grouping, serialized canonically (sorted-key ASCII
JSON header, then each stat as little-endian float64 bytes), so it is independent of the process, dict
order and hash seeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from fasttok_plugin.defaults import DEFAULT_HEAD_GROUPING
from fasttok_plugin.heads.keys import HeadKey
from fasttok_plugin.heads.pooling import STATS

__all__ = ["FINGERPRINT_VERSION", "QUANTILE_STATS", "norm_heads_fingerprint"]

#: The quantile arrays of heads whose stats come from the data, in fingerprint order.
QUANTILE_STATS = ("q01", "q10", "q90", "q99")

#: Bumped whenever the serialization changes, so old fingerprints never match new ones.
#: /2: head keys are typed JSON lists (``["tagged", rt, cm]`` / ``["fallback", position, name]``),
#: not ``"rt::cm"`` strings, which two different tag pairs could share.
FINGERPRINT_VERSION = "fasttok-norm-heads/2"


def _header(
    keys: Sequence[HeadKey],
    max_action_dim: int,
    native_dims: Sequence[int],
    dataset_to_head: Sequence[int],
    entry_names: Sequence[str],
    grouping: str,
    data: bool,
) -> bytes:
    document: dict[str, object] = {
        "version": FINGERPRINT_VERSION,
        "keys": [key.to_json() for key in keys],
        "max_action_dim": int(max_action_dim),
        "native_dims": [int(d) for d in native_dims],
        "dataset_to_head": [int(h) for h in dataset_to_head],
        "entry_names": list(entry_names),
        "shape": [len(keys), int(max_action_dim)],
    }
    # Only a non-default grouping is written, so every robot_control fingerprint stays what it was.
    if grouping != DEFAULT_HEAD_GROUPING:
        document["grouping"] = str(grouping)
    # Likewise only stats from the data are marked, so stored-stats fingerprints stay what they were.
    if data:
        document["stats_source"] = "data"
    return json.dumps(document, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def norm_heads_fingerprint(
    *,
    keys: Sequence[HeadKey],
    max_action_dim: int,
    native_dims: Sequence[int],
    stats: Sequence[np.ndarray],
    dataset_to_head: Sequence[int],
    entry_names: Sequence[str],
    grouping: str = DEFAULT_HEAD_GROUPING,
    quantiles: Sequence[np.ndarray] | None = None,
) -> str:
    """Return the sha256 hex digest of the heads' canonical serialization.

    Args:
        keys: Typed key of every head, in head order.
        max_action_dim: Stats width.
        native_dims: Native action dim of every head.
        stats: The ``(H, max_action_dim)`` min, max, mean and std arrays, in that order.
        dataset_to_head: Head of every entry position (``-1``: none).
        entry_names: Name of every entry, in position order.
        grouping: The head grouping (written only when not ``robot_control``).
        quantiles: The q01, q10, q90 and q99 arrays of stats computed from the data (None: stored stats;
            given, the header says ``stats_source: data`` and they are hashed after the others).
    """
    digest = hashlib.sha256()
    header = _header(
        keys, max_action_dim, native_dims, dataset_to_head, entry_names, grouping, quantiles is not None
    )
    digest.update(len(header).to_bytes(8, "little"))
    digest.update(header)
    named = list(zip(STATS, stats, strict=True))
    if quantiles is not None:
        named += list(zip(QUANTILE_STATS, quantiles, strict=True))
    for name, array in named:
        # + 0.0 turns -0.0 into 0.0 so equal values always hash equal; explicit little-endian bytes.
        payload = np.ascontiguousarray(np.asarray(array, dtype=np.float64) + 0.0, dtype="<f8").tobytes()
        digest.update(name.encode("ascii"))
        digest.update(len(payload).to_bytes(8, "little"))
        digest.update(payload)
    return digest.hexdigest()
