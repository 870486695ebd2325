"""What a stage hook receives as ``context``: the run, its workspace and its backends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError, NotFoundError
from .log import get_logger

if TYPE_CHECKING:  # pragma: no cover
    from .config import ChainConfig, StageConfig
    from .manager import PluginHost
    from .records import Run
    from .workspace import Workspace


@attrs.define(kw_only=True)
class RunContext:
    """The services of one run (or of a command outside a run, with ``chain=None``)."""

    host: PluginHost
    workspace: Workspace
    chain: ChainConfig | None = None
    run: Run | None = None
    stage: StageConfig | None = None
    log: Any = attrs.field(factory=lambda: get_logger("tether"))
    #: the run's ``tether.tracking.ActiveRun`` (``None`` outside a run): a step logs
    #: per-epoch metrics with ``context.tracker.log_metrics({...}, step=epoch)``
    tracker: Any = None
    #: the run's execution engine (``tether.backends.Engine``; ``None`` outside a chain run
    #: means local): see :meth:`engine_for`
    engine: Any = None

    @property
    def storage(self):
        return self.workspace.storage

    @property
    def store(self):
        return self.workspace.store

    @property
    def policy(self) -> dict[str, Any]:
        return self.chain.policy if self.chain else {}

    @property
    def base_dir(self) -> Path:
        return self.chain.base_dir if self.chain else Path.cwd()

    def resolve_path(self, path: str | Path) -> Path:
        """A path from a chain's params, relative to the chain file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def backend(self, stage: StageConfig | None = None) -> Any:
        """The backend instance of a lifecycle stage: the one built when the chain was
        validated, so a stage's backend is built (and preflighted) once."""
        stage = stage or self.stage
        if stage is None or stage.spec is None:
            raise ConfigError("backend(): not inside a lifecycle stage")
        if self.chain is not None and stage.id in self.chain.backends:
            return self.chain.backends[stage.id]
        return self.host.backends.create(stage.spec.backend_kind, stage.plugin, stage.params, where=stage.where)

    def engine_for(self, operation: str, *, what: str = "") -> Any:
        """The engine to run ``operation`` on, or ``None`` to run it locally: a chain's
        non-local engine that declines ``operation`` logs one line naming the stage and why."""
        engine = self.engine
        if engine is None or getattr(engine, "name", "local") == "local":
            return None
        if engine.supports(operation):
            return engine
        self.log.warning("stage runs locally", stage=self.stage.id if self.stage else None, engine=engine.name,
                         reason=f"the {engine.name} engine does not run '{operation}'" + (f" ({what})" if what else ""))
        return None

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, *, where: str = "") -> Any:
        """Build any backend by kind and name (e.g. a window source named in params)."""
        return self.host.backends.create(kind, name, params, where=where)

    def log_metrics(self, metrics: dict[str, float], *, step: int | None = None) -> None:
        """Log metric values of this run (``context.tracker.log_metrics``)."""
        if self.tracker is None:
            raise ConfigError("log_metrics(): not inside a run")
        self.tracker.log_metrics(metrics, step=step)

    def get(self, record_id: str, kind: str | None = None):
        """The record with ``record_id``; NotFoundError if the workspace has none."""
        record = self.workspace.store.get(record_id, kind=kind)
        if record is None:
            raise NotFoundError(f"no {kind or 'record'} with id '{record_id}' in {self.workspace.root}")
        return record
