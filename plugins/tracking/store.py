"""``StoreTracker``: a run's record and metric values in the workspace's metadata store."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from tether.backends import Tracker


@attrs.define(kw_only=True)
class StoreTracker(Tracker):
    """The built-in tracker, always on: the run record is written at start, replaced at
    each flush that changed it and at the end; metric values are held in memory and
    written with ``put_metrics`` in one transaction per flush. A store without metric
    storage (``put_metrics`` not implemented) keeps only the latest value of each metric,
    in the run record."""

    name: ClassVar[str] = "store"
    _store: Any = attrs.field(default=None, init=False, repr=False)
    _rows: list = attrs.field(factory=list, init=False, repr=False)
    _series: bool = attrs.field(default=True, init=False, repr=False)
    _log: Any = attrs.field(default=None, init=False, repr=False)

    def start_run(self, run, *, context) -> None:
        self._store, self._log = context.store, context.log
        self._store.put(run)

    def log_metrics(self, run_id, metrics, *, step=None, timestamp=None) -> None:
        stamp = timestamp.isoformat()
        self._rows.extend([(key, value, step, stamp) for key, value in metrics.items()])

    def update_run(self, run) -> None:
        self._store.put(run, replace=True)

    def flush(self, run_id) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        if not self._series:
            return
        put_metrics = getattr(self._store, "put_metrics", None)
        try:
            if put_metrics is None:
                raise NotImplementedError
            put_metrics(run_id, rows)
        except NotImplementedError:
            self._series = False
            self._log.warning("the metadata store keeps no metric series; only the latest values are recorded",
                              store=type(self._store).__name__)

    def end_run(self, run, *, status) -> None:
        self.flush(run.id)
        self._store.put(run, replace=True)
