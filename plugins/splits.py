"""The split stage: strategies that assign rows to train/validation/test, recorded by row."""

from __future__ import annotations

from typing import ClassVar

import attrs

from tether import hookimpl
from tether.backends import SplitStrategy
from tether.errors import ConfigError, DataError
from tether.records import SplitManifest

SPLITS = ("train", "validation", "test")


@attrs.frozen(kw_only=True)
class RandomSplit(SplitStrategy):
    name: ClassVar[str] = "random"
    validation: float = 0.15
    test: float = 0.15
    seed: int = 0
    stratify: str | None = None

    def assign(self, frame, *, context):
        import numpy as np
        import pandas as pd
        from sklearn.model_selection import train_test_split

        if not 0 < self.validation + self.test < 1:
            raise ConfigError(f"random split: validation + test must be between 0 and 1, got {self.validation + self.test}")
        idx = np.arange(len(frame))
        strat = frame[self.stratify].to_numpy() if self.stratify else None
        rest, test_idx = train_test_split(idx, test_size=self.test, random_state=self.seed, stratify=strat)
        strat_rest = strat[rest] if strat is not None else None
        train_idx, val_idx = train_test_split(rest, test_size=self.validation / (1 - self.test),
                                              random_state=self.seed, stratify=strat_rest)
        labels = np.empty(len(frame), dtype=object)
        labels[train_idx], labels[val_idx], labels[test_idx] = "train", "validation", "test"
        return pd.Series(labels, index=frame.index)


@attrs.frozen(kw_only=True)
class TimeSplit(SplitStrategy):
    """Train before validation before test, by proportion of the time-ordered rows."""

    name: ClassVar[str] = "time"
    time_column: str
    validation: float = 0.15
    test: float = 0.15

    def assign(self, frame, *, context):
        import numpy as np
        import pandas as pd

        if self.time_column not in frame:
            raise DataError(f"time split: column '{self.time_column}' not in the snapshot")
        times = pd.to_datetime(frame[self.time_column], utc=True)
        t_val = times.quantile(1 - self.validation - self.test)
        t_test = times.quantile(1 - self.test)
        labels = np.where(times < t_val, "train", np.where(times < t_test, "validation", "test"))
        return pd.Series(labels, index=frame.index, dtype=object)


def row_fingerprints(frame):
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False).astype("uint64")


@hookimpl(trylast=True)
def tether_split(snapshot, stage, context):
    import pandas as pd

    strategy = context.backend(stage)
    frame = context.workspace.read_snapshot(snapshot)
    labels = strategy.assign(frame, context=context)
    assignment = pd.DataFrame({"row": range(len(frame)), "row_fingerprint": row_fingerprints(frame).to_numpy(),
                               "split": labels.to_numpy()})
    ref = context.workspace.put_frame(assignment)
    sizes = {name: int((assignment["split"] == name).sum()) for name in SPLITS}
    return SplitManifest(id="split-" + ref.digest.split(":")[1][:16], snapshot_id=snapshot.id,
                         strategy=strategy.name, params=attrs.asdict(strategy), sizes=sizes, assignment=ref,
                         seed=getattr(strategy, "seed", None))


@hookimpl
def tether_add_backends(backends):
    backends.add(RandomSplit)
    backends.add(TimeSplit)
