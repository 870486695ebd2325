"""How a cluster failure reaches the user: as one ``EngineError`` naming the operation."""

from __future__ import annotations

from tether.errors import EngineError, TetherError


class mapped_errors:
    """Turns a cluster failure (a killed worker, a lost connection) into ``EngineError``;
    tether's own errors raised in a task pass through unchanged."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, TetherError) or not isinstance(exc, Exception):
            return False
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            raise EngineError(f"dask engine: a worker died while running '{self.operation}' "
                              f"(task {exc.task}); nothing was recorded. The worker may have run out of "
                              "memory: lower the partition size or raise memory_limit") from None
        if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith(("distributed", "tornado")):
            raise EngineError(f"dask engine: '{self.operation}' failed: {type(exc).__name__}: {exc}") from None
        return False
