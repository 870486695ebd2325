"""``DeclaredSplit``, the base of the built-in strategies, and helpers they share.

A strategy declares its shares (``train``/``validation``/``test``), ``seed`` and the
columns the leakage checks use; subclasses add their own parameters and ``assign``.
"""

from __future__ import annotations

import attrs
from tether.backends import SplitStrategy
from tether.errors import ConfigError, DataError
from tether.plugins.rows import SPLITS, missing_column
from tether.validators import at_least, share


@attrs.frozen(kw_only=True)
class DeclaredSplit(SplitStrategy):
    """Base of the built-in strategies: split shares, ``seed`` and the declared columns as
    parameters.

    ``entity_column``, ``time_column`` and ``label`` are what the leakage checks use;
    ``label_definition`` is recorded on the manifest; ``features_from`` names a feature
    catalogue (YAML) giving each feature's availability time; ``ignore_columns`` are left
    out of the duplicate checks and target scans (e.g. a surrogate row id); ``html`` is a
    path the stage writes an HTML report of the split and its findings to (also when a
    check fails). Subclass it to get these parameters, set ``name`` and implement
    ``assign(self, frame, *, context)``; :attr:`shares` gives the shares by split name.
    """

    train: float = attrs.field(default=0.7, validator=share)
    validation: float = attrs.field(default=0.15, validator=share)
    test: float = attrs.field(default=0.15, validator=share)
    seed: int = attrs.field(default=0, validator=at_least(0))
    entity_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    label_definition: str = ""
    features_from: str | None = None
    ignore_columns: tuple[str, ...] = ()
    html: str | None = None

    def __attrs_post_init__(self) -> None:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"split ratios train {self.train} + validation {self.validation} + test {self.test} "
                f"sum to {total:g}, not 1; make them add up to 1"
            )
        if self.train <= 0:
            raise ValueError("train must be greater than 0")

    def preflight(self, *, context) -> None:
        """Before the run: the feature catalogue must be readable and ``policy.leakage`` valid."""
        from tether.plugins.leakage.input import load_catalogue
        from tether.plugins.leakage.policy import configured_checks

        if self.features_from:
            load_catalogue(context.resolve_path(self.features_from))
        configured_checks((context.policy or {}).get("leakage"), host=context.host)

    @property
    def shares(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def py_scalar(value):
    """A numpy scalar as a plain Python value, for messages."""
    return value.item() if hasattr(value, "item") else value


def require_column(frame, column: str | None, param: str, strategy: str) -> str:
    """``column``, after checking the parameter is set and names a column of ``frame``."""
    if not column:
        raise ConfigError(f"{strategy} split: parameter '{param}' is required")
    if column not in frame.columns:
        raise missing_column(column, frame.columns, what=f"{strategy} split: {param}")
    return column


def counts_from_shares(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer row counts per split summing to ``n`` (largest remainder)."""
    raw = {k: n * v for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    left = n - sum(counts.values())
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:left]:
        counts[k] += 1
    return counts


def check_nonempty(labels, shares, strategy: str, why: str) -> None:
    """A split with a positive share must get rows."""
    import numpy as np

    for name in SPLITS:
        if shares[name] > 0 and not np.any(labels == name):
            raise DataError(f"{strategy} split: the {name} split would be empty ({why}); change the shares or add data")


def check_stratify_classes(classes, column: str, strategy: str) -> None:
    """A stratify column needs no nulls and at least two rows per class."""
    if classes.isna().any():
        raise DataError(
            f"{strategy} split: stratify column '{column}' has {int(classes.isna().sum())} null values; "
            f"fill them or drop the rows"
        )
    counts = classes.value_counts()
    small = counts[counts < 2]
    if len(small):
        raise DataError(
            f"{strategy} split: stratify column '{column}' has class {py_scalar(small.index[0])!r} with only "
            f"{int(small.iloc[0])} row; stratifying needs at least 2 rows per class (merge or drop rare classes)"
        )
