"""Small helpers the checks share to build a finding's evidence."""

from __future__ import annotations

from .input import SPLIT_NAMES


def cap(values, n: int) -> list:
    """The first ``n`` values as plain Python values."""
    return [v.item() if hasattr(v, "item") else v for v in list(values)[:n]]


def rows_by_split(rows, codes) -> dict[str, int]:
    """How many of ``rows`` are in each split."""
    import numpy as np

    return {SPLIT_NAMES[c]: int(np.sum(codes[rows] == c)) for c in range(3) if np.any(codes[rows] == c)}


def split_pairs(count) -> dict[str, int]:
    """``{"train/test": n, ...}`` for every pair of splits ``(a, b)`` where ``count(a, b)`` is not 0."""
    pairs = {}
    for a in range(3):
        for b in range(a + 1, 3):
            n = int(count(a, b))
            if n:
                pairs[f"{SPLIT_NAMES[a]}/{SPLIT_NAMES[b]}"] = n
    return pairs


def pairs_text(pairs: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in pairs.items())
