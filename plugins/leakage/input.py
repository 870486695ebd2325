"""What every leakage check receives: :class:`LeakageInput`, and feature timings from a catalogue."""

from __future__ import annotations

from typing import Any

import attrs

SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
SPLIT_NAMES = ("train", "validation", "test")


@attrs.frozen(kw_only=True)
class FeatureTiming:
    """When a feature's value becomes known: ``available_at`` column, or event time + lag."""

    name: str
    availability_lag: str | None = None
    available_at: str | None = None


def load_catalogue(path) -> tuple[FeatureTiming, ...]:
    """The availability rules of a feature catalogue file (format: docs/features.md)."""
    from tether.plugins.features.catalogue import load_catalogue as read_definitions

    return tuple(FeatureTiming(name=d.name, availability_lag=d.availability_lag or None,
                               available_at=d.available_at or None) for d in read_definitions(path))


@attrs.define(kw_only=True)
class LeakageInput:
    """What every check receives: the rows, their split, and the declared columns.

    ``splits`` holds ``train``/``validation``/``test``/``excluded`` per row (excluded rows
    are ignored by every check); ``fingerprints`` are the rows' stable fingerprints;
    ``catalogue`` holds the :class:`FeatureTiming` of the features that declare one.
    """

    frame: Any
    splits: Any
    fingerprints: Any = None
    entity_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    catalogue: tuple[FeatureTiming, ...] = ()
    ignore_columns: tuple[str, ...] = ()
    _codes: Any = attrs.field(default=None, init=False, repr=False)
    _compared: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def compared_fingerprints(self):
        """Row fingerprints over :meth:`compared_columns` (computed once, shared by checks)."""
        if self._compared is None:
            from tether.plugins.rows import row_fingerprints

            columns = self.compared_columns()
            if self.fingerprints is not None and len(columns) == len(self.frame.columns):
                self._compared = self.fingerprints
            else:
                self._compared = row_fingerprints(self.frame, columns)
        return self._compared

    @property
    def codes(self):
        """Split per row as 0 (train), 1 (validation), 2 (test) or -1 (excluded)."""
        import numpy as np

        if self._codes is None:
            s = np.asarray(self.splits, dtype=object)
            codes = np.full(len(s), -1, dtype=np.int8)
            for name, code in SPLIT_CODES.items():
                codes[s == name] = code
            self._codes = codes
        return self._codes

    def compared_columns(self) -> list[str]:
        """Columns the duplicate checks compare: all but ``ignore_columns``."""
        return [c for c in self.frame.columns if c not in self.ignore_columns]

    def feature_columns(self) -> list[str]:
        """Candidate features: all columns but the declared and ignored ones."""
        skip = {self.entity_column, self.time_column, self.label, *self.ignore_columns}
        skip |= {t.available_at for t in self.catalogue if t.available_at}
        return [c for c in self.frame.columns if c not in skip]
