"""A workspace: one folder with its storage (objects) and metadata store (records).

:class:`Workspace` is what a run, the CLI commands and the Python API read and write
through. It is a context manager that closes its store::

    with Workspace.open(host, ".tether") as ws:
        runs = ws.store.find("run", limit=5)

Everything read back from storage is checked against its recorded digest first; a
pickled artifact is never unpickled before that check passes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .config import BackendConfig, interpolate, parse_backend_config
from .errors import ConfigError, IntegrityError, NotFoundError
from .records import FeatureSet, ObjectRef, TrainedModel
from .signing import check_signature, sign, signing_key

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .config import ChainConfig
    from .manager import PluginHost
    from .records import DatasetSnapshot

#: The file in a workspace folder that remembers the backends a chain last ran it with.
WORKSPACE_FILE = "workspace.json"
DEFAULT_STORAGE = BackendConfig(plugin="local")
DEFAULT_STORE = BackendConfig(plugin="sqlite")


def remembered_backends(root: Path) -> tuple[BackendConfig | None, BackendConfig | None]:
    """The ``storage`` and ``store`` sections recorded in ``<root>/workspace.json``, with
    ``${VAR}`` placeholders expanded now; ``(None, None)`` if there is no such file."""
    path = root / WORKSPACE_FILE
    if not path.is_file():
        return None, None
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; remove it")
    try:
        raw = interpolate(json.loads(path.read_text(encoding="utf-8")), "")
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); delete it to use local storage and SQLite") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'storage' and 'store'; delete it to use the defaults")
    return (parse_backend_config(raw.get("storage"), "storage", "local", str(path)),
            parse_backend_config(raw.get("store"), "store", "sqlite", str(path)))


class Workspace:
    """A workspace folder with its storage and metadata store."""

    def __init__(self, root: Path, storage: Any, store: Any, *,
                 references: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.root = Path(root)
        self.storage = storage
        self.store = store
        #: record kind -> resolver of references that are not ids (``Backends.add_reference``)
        self.references = references if references is not None else {}

    @classmethod
    def open(cls, host: PluginHost, root: str | Path = ".tether", *, storage: BackendConfig | None = None,
             store: BackendConfig | None = None) -> Workspace:
        """Open a workspace. Without explicit backends, those a chain ran with (remembered
        in ``<root>/workspace.json``) are used, else local storage and SQLite."""
        root = Path(root).resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"workspace '{root}' is a file, not a folder; point --workspace at a folder")
        if storage is None and store is None:
            storage, store = remembered_backends(root)
        backends = host.backends
        return cls(
            root,
            backends.create("storage", (storage or DEFAULT_STORAGE).plugin, (storage or DEFAULT_STORAGE).params,
                            where="storage", workspace=root),
            backends.create("store", (store or DEFAULT_STORE).plugin, (store or DEFAULT_STORE).params,
                            where="store", workspace=root),
            references=backends.references,
        )

    @classmethod
    def for_chain(cls, chain: ChainConfig, host: PluginHost) -> Workspace:
        """The workspace a validated chain names, with the backend instances built when it
        was validated."""
        if "storage" in chain.backends and "store" in chain.backends:
            return cls(chain.workspace, chain.backends["storage"], chain.backends["store"],
                       references=host.backends.references)
        return cls.open(host, chain.workspace, storage=chain.storage, store=chain.store)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def remember(self, chain: ChainConfig) -> None:
        """Record the chain's ``storage``/``store`` sections as written (``${VAR}`` kept, so no
        secrets) in ``workspace.json``, so CLI commands open the same backends later."""
        if not chain.backends_as_written:
            return
        text = json.dumps(chain.backends_as_written, indent=2, sort_keys=True)
        target = self.root / WORKSPACE_FILE
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".workspace-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if callable(close):
            close()

    def get(self, record_id: str, kind: str | None = None):
        """The record with ``record_id`` (of ``kind`` if given), or ``None``."""
        return self.store.get(record_id, kind=kind)

    def resolve(self, ref: str, *, kind: str | None = None, hint: str = "tether runs ls"):
        """The record ``ref`` names: an id, a unique id prefix (8 characters or more), or for
        named records ``NAME`` (the latest version) or ``NAME@VERSION`` (``NAME@v3`` too).
        Model versions also take ``NAME@ALIAS`` and ``NAME@STATUS`` (``churn@champion``,
        ``churn@production``), with or without ``kind``. Every command that takes a record
        resolves it here; NotFoundError says what to give."""
        what = kind or "record"
        if not isinstance(ref, str) or not ref.strip():
            raise NotFoundError(f"give a {what} id or name, got {ref!r}")
        record = self.store.get(ref, kind=kind)
        if record is not None:
            return record
        resolvers = ([self.references[kind]] if kind in self.references
                     else list(self.references.values()) if kind is None and "@" in ref else [])
        for resolver in resolvers:
            found = resolver(self.store, ref, required=kind is not None)
            if found is not None:
                return found
        if kind is not None:
            name, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
            versions = self.store.find(kind, name=name)
            if versions:
                return _pick_version(ref, name, version, versions)
            if len(ref) >= 8:
                found = self.store.find(kind, prefix=ref, limit=2)
                if len(found) > 1:
                    raise NotFoundError(f"{what} id prefix '{ref}' is ambiguous; give more characters")
                if found:
                    return found[0]
        raise NotFoundError(f"no {what} '{ref}' in {self.root} (give an id, an id prefix, NAME or NAME@VERSION; "
                            f"see `{hint}`)")

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
        """A stored Parquet object as an Arrow table, after its digest was checked."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self.storage.read_bytes(ref)  # verified
        return pq.read_table(pa.BufferReader(data), columns=columns)

    def read_frame(self, ref: ObjectRef, columns: list[str] | None = None) -> pd.DataFrame:
        """A stored Parquet object as a DataFrame, after its digest was checked."""
        return self.read_table(ref, columns).to_pandas()

    def put_object(self, obj: Any) -> ObjectRef:
        """Pickle ``obj`` (a fitted model or transform) as a content-addressed artifact,
        signed when ``TETHER_SIGNING_KEY`` is set (:mod:`tether.signing`)."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        ref = self.storage.put_bytes(data, suffix=".pkl", media_type="application/x-python-pickle")
        key = signing_key()
        return attrs.evolve(ref, signature=sign(ref.digest, key)) if key else ref

    def load_object(self, ref: ObjectRef, *, what: str = "artifact") -> Any:
        """Unpickle an artifact, only after its signature (with a signing key) and its bytes
        (always) matched what its record says."""
        check_signature(ref.digest, ref.signature, what=f"{what} {ref.key}")
        data = self.storage.read_bytes(ref)  # raises IntegrityError before any unpickling
        return pickle.loads(data)

    def load_model(self, model: TrainedModel) -> Any:
        """A trained model's estimator, after checking that the record's id was derived from
        this artifact (a record re-pointed at other bytes fails) and the artifact itself."""
        if model.id != TrainedModel.id_for(model.artifact):
            raise IntegrityError(f"model {model.id} points at artifact {model.artifact.digest}, not the one its id "
                                 "was derived from: the record was altered; refusing to unpickle it")
        return self.load_object(model.artifact, what=f"model {model.id}")

    def load_transform(self, features: FeatureSet) -> Any:
        """A feature set's fitted transform, after checking that the record's id was derived
        from what it holds (a record re-pointed at other bytes fails) and the artifact."""
        expected = FeatureSet.id_for(snapshot_id=features.snapshot_id, split_id=features.split_id,
                                     transform=features.transform, matrices=features.matrices)
        if features.id != expected:
            raise IntegrityError(f"feature set {features.id} does not match the artifacts it points at: the record "
                                 "was altered; refusing to unpickle its transform")
        return self.load_object(features.transform, what=f"transform of {features.id}")

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
        getter = getattr(self.storage, "verified_path", None)
        for ref in snapshot.objects:
            try:
                if callable(getter):
                    tables.append(pq.read_table(getter(ref), columns=columns, memory_map=True))
                else:
                    tables.append(self.read_table(ref, columns))
            except NotFoundError:
                raise IntegrityError(f"snapshot {snapshot.id}: object '{ref.key}' is missing from storage") from None
        whole = [pa.concat_tables(tables) if len(tables) > 1 else tables[0]]
        del tables
        return table_to_frame(whole)  # the table and the frame never both exist whole


def _pick_version(ref: str, name: str, version: str, versions: list[Any]):
    """The version ``version`` (latest when empty) of the records named ``name``."""
    def order(record: Any) -> tuple:
        return (getattr(record, "version", None) or 0, getattr(record, "created_at", None) or 0)

    if not version:
        return max(versions, key=order)
    try:
        wanted = int(version.lstrip("v"))
    except ValueError:
        raise NotFoundError(f"'{ref}': version '{version}' is not a number") from None
    match = [r for r in versions if getattr(r, "version", None) == wanted]
    if match:
        return match[0]
    known = ", ".join(str(getattr(r, "version", "?")) for r in sorted(versions, key=order))
    raise NotFoundError(f"'{name}' has no version {wanted} (versions: {known})")


def table_to_frame(tables: list):
    """The Arrow table in the one-element list ``tables`` as a DataFrame, without holding both
    whole. The table is taken out of the list, so that no reference outside keeps the
    columns already converted alive (it must not be used afterwards).

    A table without pandas metadata (CSV, Parquet not written by pandas) is converted a
    column at a time, each column's Arrow memory handed back to the system before the next
    (the reader's batches interleave every column's buffers, so a whole-table conversion
    frees nothing until its end: 1.8 GB instead of 1.2 GB for a 0.8 GB table); a table
    with pandas metadata (an index, column dtypes to restore) is converted whole.
    """
    import pandas as pd
    import pyarrow as pa

    table = tables.pop()
    pool = pa.default_memory_pool()
    if table.schema.pandas_metadata is not None or len(set(table.column_names)) != table.num_columns:
        frame = table.to_pandas(split_blocks=True, self_destruct=True)
        del table
        pool.release_unused()  # hand the freed Arrow memory back to the system
        return frame
    names, rows, columns = table.column_names, table.num_rows, {}
    for name in names:
        column = table.column(0)
        table = table.remove_column(0)
        columns[name] = column.to_pandas(split_blocks=True, self_destruct=True)
        del column
        pool.release_unused()
    return pd.DataFrame(columns, index=pd.RangeIndex(rows), copy=False)
