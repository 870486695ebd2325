"""``label_shift``: missing labels, and a label distribution differing between splits."""

from __future__ import annotations

from typing import ClassVar

import attrs
from tether.backends import LeakageCheck
from tether.records import Finding
from tether.validators import within

from .evidence import cap
from .input import SPLIT_NAMES, LeakageInput
from .scoring import label_kind


def _label_bins(y, codes, ok):
    """(bin per row, number of bins): classes, or training deciles of a numeric label; ``None`` if
    a numeric label has fewer than 10 training rows."""
    import numpy as np
    import pandas as pd

    if label_kind(y) != "numeric":
        bins, uniques = pd.factorize(y, use_na_sentinel=True)
        return bins, len(uniques)
    v = y.to_numpy(dtype="float64", na_value=np.nan)
    train = v[(codes == 0) & ok]
    if len(train) < 10:
        return None
    edges = np.unique(np.quantile(train, np.linspace(0, 1, 11)[1:-1]))
    return np.searchsorted(edges, v, "right"), len(edges) + 1


def _distances(y, codes) -> dict[str, float] | None:
    """Total variation distance of each held-out split's label distribution from training's."""
    import numpy as np

    ok = y.notna().to_numpy()
    binned = _label_bins(y, codes, ok)
    if binned is None:
        return None
    bins, nbins = binned
    dist = {}
    for c in range(3):
        sel = (codes == c) & ok
        if sel.any():
            dist[c] = np.bincount(bins[sel], minlength=nbins) / sel.sum()
    if 0 not in dist:
        return None
    return {SPLIT_NAMES[c]: round(float(0.5 * np.abs(p - dist[0]).sum()), 6) for c, p in dist.items() if c}


@attrs.frozen(kw_only=True)
class LabelShift(LeakageCheck):
    """The label distribution of validation/test differs from training's by more than
    ``max_distance`` (total variation distance over classes, or over training deciles for
    a numeric label); missing labels are reported too."""

    name: ClassVar[str] = "label_shift"
    default_action: ClassVar[str] = "warn"
    max_distance: float = attrs.field(default=0.1, validator=within(0, 1))

    def check(self, data: LeakageInput) -> list[Finding]:
        import numpy as np

        if not data.label:
            return []
        y = data.frame[data.label]
        codes = data.codes
        out = []
        missing = y.isna().to_numpy() & (codes >= 0)
        if missing.any():
            out.append(Finding(
                check=self.name, severity="warning",
                message=f"label '{data.label}' is missing in {int(missing.sum())} rows",
                evidence={"n_rows": int(missing.sum()), "rows": cap(np.flatnonzero(missing), 50)},
                fix="drop unlabelled rows before splitting, or define the label for them",
            ))
        distances = _distances(y, codes)
        shifted = {k: v for k, v in (distances or {}).items() if v > self.max_distance}
        if shifted:
            out.append(Finding(
                check=self.name, severity="warning",
                message=f"label '{data.label}' distribution differs from training in "
                        + ", ".join(f"{k} (distance {v:.3f})" for k, v in shifted.items()),
                evidence={"distance": distances, "max_distance": self.max_distance, "label": data.label},
                fix="if the shift is real (time split), evaluate with it in mind; "
                    "otherwise stratify the split on the label",
            ))
        return out
