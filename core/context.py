"""The services a stage works with: the workspace (storage + metadata store) and the run.

:class:`Workspace` is also what CLI commands and the Python API use outside a run.
Everything read back from storage is checked against its recorded digest first; a
pickled artifact is never unpickled before that check passes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError, IntegrityError, NotFoundError
from .log import get_logger
from .records import ObjectRef

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .config import BackendConfig, ChainConfig, StageConfig
    from .manager import PluginHost
    from .records import DatasetSnapshot, Run


WORKSPACE_FILE = "workspace.json"


def _raw_sections(chain: ChainConfig) -> dict[str, Any]:
    from .config import _parse_text

    if not chain.text:
        return {}
    raw = _parse_text(chain.text, str(chain.path or "chain"), chain.path.suffix.lower() if chain.path else ".yaml")
    return {key: raw[key] for key in ("storage", "store") if isinstance(raw, dict) and raw.get(key) is not None}


def _remembered_backends(root: Path):
    from .config import _backend_config, _interpolate

    path = root / WORKSPACE_FILE
    if not path.is_file():
        return None, None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw = _interpolate(raw, "")
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); delete it to use local storage and SQLite") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return (_backend_config(raw.get("storage"), "storage", "local", str(path)),
            _backend_config(raw.get("store"), "store", "sqlite", str(path)))


def create_workspace_backend(host: PluginHost, kind: str, config: BackendConfig, workspace: Path, *, where: str):
    """Instantiate the storage or store backend, passing ``workspace`` if it takes one."""
    cls = host.backends.get(kind, config.plugin, where=f"{where}.plugin")
    params = dict(config.params)
    if "workspace" in attrs.fields_dict(cls):
        params.setdefault("workspace", str(workspace))
    return host.backends.create(kind, config.plugin, params, where=where)


class Workspace:
    """A workspace folder with its storage and metadata store."""

    def __init__(self, root: Path, storage: Any, store: Any) -> None:
        self.root = Path(root)
        self.storage = storage
        self.store = store

    @classmethod
    def open(cls, host: PluginHost, root: str | Path = ".tether", *, storage: BackendConfig | None = None,
             store: BackendConfig | None = None) -> Workspace:
        """Open a workspace. Without explicit backends, those a chain ran with (remembered
        in ``<root>/workspace.json``) are used, else local storage and SQLite."""
        from .config import BackendConfig

        root = Path(root).resolve()
        if storage is None and store is None:
            storage, store = _remembered_backends(root)
        storage = create_workspace_backend(host, "storage", storage or BackendConfig(plugin="local"), root, where="storage")
        store = create_workspace_backend(host, "store", store or BackendConfig(plugin="sqlite"), root, where="store")
        return cls(root, storage, store)

    @classmethod
    def for_chain(cls, chain: ChainConfig, host: PluginHost) -> Workspace:
        return cls.open(host, chain.workspace, storage=chain.storage, store=chain.store)

    def remember(self, chain: ChainConfig) -> None:
        """Record the chain's ``storage``/``store`` sections as written (``${VAR}`` kept, so no
        secrets) in ``workspace.json``, so CLI commands open the same backends later."""
        raw = _raw_sections(chain)
        target = self.root / WORKSPACE_FILE
        if not raw:
            return
        text = json.dumps(raw, indent=2, sort_keys=True)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".workspace-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close:
            close()

    # -- artifacts ---------------------------------------------------------------------------

    def put_frame(self, frame: Any) -> ObjectRef:
        """Write a DataFrame or Arrow table as a zstd Parquet object."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return self.storage.put_bytes(sink.getvalue(), suffix=".parquet", media_type="application/vnd.apache.parquet")

    def read_table(self, ref: ObjectRef, columns: list[str] | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self.storage.read_bytes(ref)  # verified
        return pq.read_table(pa.BufferReader(data), columns=columns)

    def read_frame(self, ref: ObjectRef, columns: list[str] | None = None) -> pd.DataFrame:
        return self.read_table(ref, columns).to_pandas()

    def put_object(self, obj: Any) -> ObjectRef:
        """Pickle ``obj`` (a fitted model or transform) as a content-addressed artifact."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return self.storage.put_bytes(data, suffix=".pkl", media_type="application/x-python-pickle")

    def load_object(self, ref: ObjectRef) -> Any:
        """Unpickle an artifact, only after its bytes matched the recorded digest."""
        data = self.storage.read_bytes(ref)  # raises IntegrityError before any unpickling
        return pickle.loads(data)  # noqa: S301 - digest verified above

    def read_snapshot(self, snapshot: DatasetSnapshot, columns: list[str] | None = None) -> pd.DataFrame:
        """The snapshot's rows as a DataFrame, every object verified against its digest first.

        Objects are verified by streaming them through the hash (storage backends with
        ``verified_path`` hand back a local file that pyarrow then memory-maps), so memory
        holds the decoded frame only. ``columns`` reads just those columns.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not snapshot.objects:
            raise IntegrityError(f"snapshot {snapshot.id} has no stored objects")
        tables = []
        for ref in snapshot.objects:
            getter = getattr(self.storage, "verified_path", None)
            try:
                if callable(getter):
                    tables.append(pq.read_table(getter(ref), columns=columns, memory_map=True))
                else:
                    tables.append(self.read_table(ref, columns))
            except NotFoundError:
                raise IntegrityError(f"snapshot {snapshot.id}: object '{ref.key}' is missing from storage") from None
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return table.to_pandas()

    def get(self, record_id: str, kind: str | None = None):
        return self.store.get(record_id, kind=kind)


@attrs.define(kw_only=True)
class RunContext:
    """What a stage hook receives as ``context``."""

    host: PluginHost
    workspace: Workspace
    chain: ChainConfig | None = None
    run: Run | None = None
    stage: StageConfig | None = None
    log: Any = attrs.field(factory=lambda: get_logger("tether"))

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
        """The backend instance a lifecycle stage names in ``plugin``/``params``."""
        stage = stage or self.stage
        if stage is None or stage.spec is None:
            raise ConfigError("backend(): not inside a lifecycle stage")
        return self.host.backends.create(stage.spec.backend_kind, stage.plugin, stage.params, where=stage.where)

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, *, where: str = "") -> Any:
        return self.host.backends.create(kind, name, params, where=where)

    def get(self, record_id: str, kind: str | None = None):
        record = self.workspace.store.get(record_id, kind=kind)
        if record is None:
            raise NotFoundError(f"no {kind or 'record'} with id '{record_id}' in {self.workspace.root}")
        return record
