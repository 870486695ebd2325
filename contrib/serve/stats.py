"""What each arm did since the current routing plan took effect: the sample the canary
analysis judges (requests, errors, latencies, outputs and inputs of the last requests)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

#: requests each arm keeps for the analysis (the oldest are dropped)
DEFAULT_KEEP = 20_000


class ArmWindow:
    """One arm's requests since the plan took effect.

    Attributes a signal may read: ``arm`` (``stable``, ``canary``...), ``version`` (model
    version id), ``requests`` and ``errors`` (counts since the window opened),
    ``started`` (monotonic seconds), and the last requests' ``latencies_ms()``,
    ``outputs()`` (a ``pandas.DataFrame`` of the model's output columns) and ``inputs()``
    (a ``pandas.DataFrame`` of the validated inputs).
    """

    def __init__(self, arm: str, version: str | None, keep: int = DEFAULT_KEEP) -> None:
        self.arm, self.version = arm, version
        self.requests = 0
        self.errors = 0
        self.started = time.monotonic()
        self._latencies: deque[float] = deque(maxlen=keep)
        self._outputs: deque[dict[str, Any]] = deque(maxlen=keep)
        self._inputs: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, latency_ms: float, *, error: bool, inputs: list[dict[str, Any]] = (),
            outputs: list[dict[str, Any]] = ()) -> None:
        with self._lock:
            self.requests += 1
            self.errors += bool(error)
            self._latencies.append(latency_ms)
            self._inputs.extend(inputs)
            self._outputs.extend(outputs)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def latencies_ms(self):
        import numpy as np

        with self._lock:
            return np.fromiter(self._latencies, dtype=float, count=len(self._latencies))

    def outputs(self):
        import pandas as pd

        with self._lock:
            return pd.DataFrame(list(self._outputs))

    def inputs(self):
        import pandas as pd

        with self._lock:
            return pd.DataFrame(list(self._inputs))

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles, for evidence and ``/health``."""
        import numpy as np

        lat = self.latencies_ms()
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if lat.size else (lambda q: None)
        return {"arm": self.arm, "version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 6), "latency_p50_ms": pct(50), "latency_p95_ms": pct(95)}


class Stats:
    """The arms' windows of the current plan; a new plan (``reset``) opens new windows."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        self._current: tuple[tuple | None, dict[str, ArmWindow]] = (None, {})  # swapped as one reference

    @property
    def arms(self) -> dict[str, ArmWindow]:
        return self._current[1]

    def reset(self, token: tuple, arms: dict[str, str | None]) -> None:
        self._current = (token, {arm: ArmWindow(arm, version, self.keep) for arm, version in arms.items()})

    def arm(self, token: tuple, arm: str) -> ArmWindow | None:
        """The window of ``arm`` if ``token`` is still the current plan (else ``None``: a
        request that started under the previous plan is not counted in the new windows)."""
        current, arms = self._current
        return arms.get(arm) if token == current else None
