"""A tether plugin: hold out the last N weeks of a snapshot as the test split."""

from typing import ClassVar

import attrs
from tether import hookimpl
from tether.backends import SplitStrategy


@attrs.frozen(kw_only=True)
class WeeklySplit(SplitStrategy):
    name: ClassVar[str] = "weekly"  # what a chain writes as `plugin: weekly`
    time_column: str
    test_weeks: int = 4

    def assign(self, frame, *, context):
        import pandas as pd  # heavy imports stay inside

        times = pd.to_datetime(frame[self.time_column], utc=True)
        cutoff = times.max() - pd.Timedelta(weeks=self.test_weeks)
        return (times > cutoff).map({False: "train", True: "test"})


@hookimpl
def tether_add_backends(backends):
    backends.add(WeeklySplit)
