"""Time checks: ``temporal_order`` (splits overlap in time) and ``feature_availability``
(features known only after the prediction time)."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.errors import DataError
from tether.plugins.rows import parse_duration, parse_times
from tether.records import Finding
from tether.validators import at_least

from .evidence import cap
from .input import SPLIT_CODES, FeatureTiming, LeakageInput


def _late_rows(t, codes, starts):
    """Training rows after the first held-out start, validation rows after the test start."""
    import numpy as np

    late = np.zeros(len(t), dtype=bool)
    by = {}
    late_train = (codes == 0) & (t > min(starts.values()))
    late |= late_train
    if late_train.any():
        by["train"] = int(late_train.sum())
    if "test" in starts:
        late_val = (codes == 1) & (t > starts["test"])
        late |= late_val
        if late_val.any():
            by["validation"] = int(late_val.sum())
    return late, by


@attrs.frozen(kw_only=True)
class TemporalOrder(LeakageCheck):
    """Training rows later than the start of validation or test; validation rows later
    than the start of test (by ``time_column``)."""

    name: ClassVar[str] = "temporal_order"
    default_action: ClassVar[str] = "fail"
    sample: int = attrs.field(default=50, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np
        import pandas as pd

        column = data.time_column
        if not column:
            return []
        t = parse_times(data.frame[column], column, where="temporal_order").dt.tz_localize(None).to_numpy()
        codes = data.codes
        starts = {name: t[codes == SPLIT_CODES[name]].min() for name in ("validation", "test")
                  if (codes == SPLIT_CODES[name]).any()}
        if not starts:
            return []
        late, by = _late_rows(t, codes, starts)
        if not late.any():
            return []
        rows = np.flatnonzero(late)
        iso = {k: pd.Timestamp(v).tz_localize("UTC").isoformat() for k, v in starts.items()}
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(rows)} rows are later than the start of a later split "
                    f"({', '.join(f'{k}: {v}' for k, v in by.items())}; "
                    f"validation starts {iso.get('validation', '-')}, test starts {iso.get('test', '-')})",
            evidence={"column": column, "n_rows": len(rows), "late_rows_by_split": by, "starts": iso,
                      "rows": cap(rows, self.sample)},
            fix=f"split by time (plugin: time or time_group with time_column: {column}) so training ends "
                f"before validation starts; add a gap for features computed over windows",
        )]


def _available_times(frame, feature: FeatureTiming, t):
    """When ``feature``'s value becomes known per row, or ``None`` if the catalogue does not say."""
    if feature.available_at:
        if feature.available_at not in frame.columns:
            raise DataError(
                f"feature_availability: available_at column '{feature.available_at}' of feature "
                f"'{feature.name}' is not in the data"
            )
        return parse_times(frame[feature.available_at], feature.available_at, where="feature_availability")
    if feature.availability_lag:
        return t + parse_duration(feature.availability_lag)
    return None


@attrs.frozen(kw_only=True)
class FeatureAvailability(LeakageCheck):
    """Features whose value becomes known after the prediction time (``time_column``),
    from the feature catalogue: ``available_at`` column, or event time + ``availability_lag``."""

    name: ClassVar[str] = "feature_availability"
    default_action: ClassVar[str] = "fail"
    sample: int = attrs.field(default=20, validator=at_least(1))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.time_column or not data.catalogue:
            return []
        frame, live = data.frame, data.codes >= 0
        t = parse_times(frame[data.time_column], data.time_column, where="feature_availability")
        late_cols: dict[str, int] = {}
        samples: dict[str, list] = {}
        for feature in data.catalogue:
            if feature.name not in frame.columns:
                continue
            avail = _available_times(frame, feature, t)
            if avail is None:
                continue
            late = live & frame[feature.name].notna().to_numpy() & (avail > t).to_numpy()
            if late.any():
                rows = np.flatnonzero(late)
                late_cols[feature.name] = len(rows)
                samples[feature.name] = cap(rows, self.sample)
        if not late_cols:
            return []
        return [Finding(
            check=self.name, severity="error",
            message=f"{len(late_cols)} features are known only after the prediction time '{data.time_column}': "
                    + ", ".join(f"{c} ({n} rows)" for c, n in late_cols.items()),
            evidence={"columns": list(late_cols), "n_rows": late_cols, "rows": samples,
                      "time_column": data.time_column},
            fix="compute these features as of the prediction time (point-in-time join), or drop them",
        )]
