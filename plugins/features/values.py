"""Comparing feature values and writing them into findings and reports."""

from __future__ import annotations

from typing import Any


def jsonable(value: Any) -> Any:
    """A scalar as plain JSON (numpy scalars unwrapped, missing values as ``None``)."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def values_equal(a, b, tolerance: float):
    """Element-wise equality: both missing is equal; numbers within ``tolerance``."""
    import numpy as np
    import pandas as pd

    a, b = pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    same = a_na & b_na
    both = ~a_na & ~b_na
    an, bn = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    numeric = both & an.notna().to_numpy() & bn.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        close = np.abs(an.to_numpy(dtype="float64", na_value=np.nan) - bn.to_numpy(dtype="float64", na_value=np.nan))
        close = close <= tolerance + tolerance * np.abs(bn.to_numpy(dtype="float64", na_value=np.nan))
    same |= numeric & close
    other = both & ~numeric
    same[other] = (a[other].astype(str) == b[other].astype(str)).to_numpy()
    return same
