"""The ``batch`` strategy: score a snapshot or a Parquet/CSV file in chunks, in bounded memory.

Rows are read ``batch_rows`` at a time (pyarrow ``iter_batches``), validated and scored
with the model version's verified bundle, and appended to one Parquet file with a
``ParquetWriter``; memory holds one chunk, whatever the input's size. The output has the
snapshot's key columns, ``keep_columns`` and its time column (each once, in that order,
with their input types), then ``score``, ``prediction`` and ``model_version``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from tether.backends import Rollout
from tether.errors import ConfigError, DataError, did_you_mean
from tether.validators import at_least, one_of

from .params import check_environment
from .state import previous_version

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from tether.records import Deployment

#: the columns the deployer writes next to the kept ones
OUTPUT_COLUMNS = ("score", "prediction", "model_version")
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def _check_keep_columns(inst, attribute, value) -> None:
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a column name must be a non-empty string, got {name!r}", key=f"{attribute.name}[{i}]")
        if name in OUTPUT_COLUMNS:
            raise ConfigError(f"'{name}' is a column the deployer writes ({', '.join(OUTPUT_COLUMNS)}); it cannot "
                              "be kept from the snapshot", key=f"{attribute.name}[{i}]")


@attrs.frozen(kw_only=True)
class BatchRollout(Rollout):
    """Score a snapshot (or ``source``, a Parquet/CSV file or Parquet folder) with the model
    version's bundle, streaming ``batch_rows`` rows at a time to a Parquet file in ``output``."""

    name: ClassVar[str] = "batch"
    #: a chain's engine scores a Parquet ``source`` partition by partition (see docs/scaling.md)
    engine_operations: ClassVar[tuple[str, ...]] = ("score",)
    output: str = "predictions"
    keep_columns: tuple[str, ...] = attrs.field(default=(), validator=_check_keep_columns)
    source: str | None = None
    batch_rows: int = attrs.field(default=65_536, validator=at_least(1))
    unseen: str = attrs.field(default="ignore", validator=one_of("error", "ignore", "fallback"))
    progress: bool = True
    environment: str = attrs.field(default="batch", validator=check_environment)

    def preflight(self, *, context) -> None:
        if self.source is not None and not context.resolve_path(self.source).exists():
            raise DataError(f"params.source: file '{self.source}' not found")

    def kept_columns(self, names: tuple[str, ...] | list[str], key: tuple[str, ...] = (),
                     time_column: str | None = None, *, what: str = "the input") -> list[str]:
        """Key, ``keep_columns`` and time columns, each once; a kept column missing from
        ``names`` is a ``DataError`` naming it (raised before anything is scored)."""
        for i, column in enumerate(self.keep_columns):
            if column not in names:
                raise DataError(f"params.keep_columns[{i}]: {what} has no column '{column}'"
                                f"{did_you_mean(column, names)}")
        wanted = (*key, *self.keep_columns, *([time_column] if time_column else []))
        return [c for c in dict.fromkeys(wanted) if c in names and c not in OUTPUT_COLUMNS]

    def deploy(self, model_version, snapshot, *, context) -> Deployment:
        from tether import audit
        from tether.plugins.bundles import load_bundle
        from tether.records import Deployment, new_id

        bundle = load_bundle(context.workspace, model_version, unseen=self.unseen)
        names, kept, batches, origin = self._input(snapshot, bundle.input_names, context)
        missing = [c for c in bundle.input_names if c not in names]
        if missing:
            raise DataError(f"{origin} lacks the model's input columns {missing}")
        deployment_id = new_id("deploy")
        folder = context.resolve_path(self.output)
        folder.mkdir(parents=True, exist_ok=True)
        engine = self._engine(context)
        if engine is not None:  # Parquet parts, one per input partition, in a folder
            target = folder / deployment_id
            stats = engine.score(context.resolve_path(self.source), bundle, kept=kept, version_id=model_version.id,
                                 output=target)
            refs = tuple(context.storage.put_file(p, suffix=".parquet", media_type=PARQUET_MEDIA_TYPE)
                         for p in stats.pop("parts"))
        else:
            target = folder / f"{deployment_id}.parquet"
            stats = self._score_here(batches, bundle, kept, model_version.id, target, snapshot, context)
            refs = (context.storage.put_file(target, suffix=".parquet", media_type=PARQUET_MEDIA_TYPE),)
        details = {"rows": stats["rows"], "source": origin, **({"snapshot_id": snapshot.id} if snapshot else {})}
        details.update({k: v for k, v in stats.items() if k != "rows"})
        return Deployment(
            id=deployment_id, model_version_id=model_version.id, target=self.name, status="completed",
            outputs=refs, location=str(target), details=details, environment=self.environment,
            strategy=self.name, state="completed", weight=100.0, bundle_id=bundle.id,
            rollback_target=previous_version(context.store, self.environment, model_version.id),
            actor=audit.actor())

    def _score_here(self, batches, bundle, kept, version_id: str, target: Path, snapshot, context) -> dict[str, Any]:
        progress = self._progress(context, self._total(snapshot, context))
        try:
            return write_predictions(batches, bundle, kept, version_id, target, progress=progress)
        finally:
            if progress is not None:
                progress.close()

    def _engine(self, context):
        """The chain's engine when it scores ``source`` (a Parquet file or folder), else ``None``."""
        engine_for = getattr(context, "engine_for", None)  # None outside a run
        if engine_for is None or getattr(context, "engine", None) is None or context.engine.name == "local":
            return None
        from tether.plugins.engines.partitions import is_parquet

        if self.source is None or not is_parquet(context.resolve_path(self.source)):
            context.log.warning("stage runs locally", stage=context.stage.id if context.stage else None,
                                engine=context.engine.name,
                                reason="the engine scores params.source when it is a Parquet file or folder; "
                                       "a snapshot or CSV file is scored in this process")
            return None
        return engine_for("score")

    def _total(self, snapshot, context) -> int | None:
        """The rows to score, when known without reading them (a snapshot, a Parquet file)."""
        if self.source is None:
            return snapshot.num_rows if snapshot is not None else None
        path = context.resolve_path(self.source)
        if path.is_file() and path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        return None

    def _input(self, snapshot, inputs: list[str], context) -> tuple[list[str], list[str], Iterator, str]:
        """(column names, kept columns, record batches of inputs + kept, what is scored)."""
        if self.source is not None:
            from tether.plugins.tables import iter_file_batches

            path = context.resolve_path(self.source)
            batches = iter_file_batches(path, batch_rows=self.batch_rows)
            first = next(batches)
            names = list(first.schema.names)
            kept = self.kept_columns(names, what=f"file '{self.source}'")
            return names, kept, _chain(first, batches), f"file '{self.source}'"
        if snapshot is None:
            raise DataError("batch deploy needs data to score: a snapshot stage before it, or params.source")
        names = list(snapshot.column_names)
        kept = self.kept_columns(names, snapshot.key_columns, snapshot.time_column,
                                 what=f"the snapshot {snapshot.id} ({snapshot.name})")
        wanted = [c for c in dict.fromkeys([*kept, *inputs]) if c in names]
        return names, kept, snapshot_batches(context.workspace, snapshot, wanted, self.batch_rows), \
            f"snapshot {snapshot.id}"

    def _progress(self, context, total: int | None):
        """Rows scored: a log line per million rows, a bar on a terminal (see tether.plugins.progress)."""
        from tether.plugins.progress import Progress

        return Progress("score", total, unit="rows", every=1_000_000) if self.progress else None


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def snapshot_batches(workspace, snapshot, columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``columns`` of the snapshot's objects, ``batch_rows`` at a time, each object
    verified against its digest before it is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    getter = getattr(workspace.storage, "verified_path", None)
    for ref in snapshot.objects:
        source = str(getter(ref)) if callable(getter) else pa.BufferReader(workspace.storage.read_bytes(ref))
        with pq.ParquetFile(source, pre_buffer=False) as pf:
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns, use_pandas_metadata=False)


def write_predictions(batches: Iterator, bundle, kept: list[str], version_id: str, target: Path, *,
                      progress=None, summary: PredictionSummary | None = None) -> dict[str, Any]:
    """Score every batch and append it to ``target`` (written under a temporary name and
    renamed at the end, so a failure leaves no partial file). Returns row counts and the
    prediction summary (accumulated in ``summary`` when given); ``progress`` (a
    ``tether.plugins.progress.Progress``) is stepped by the rows of each batch."""
    import tempfile

    import pyarrow.parquet as pq

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".scoring-", suffix=".tmp")
    os.close(fd)
    writer, rows, summary = None, 0, summary if summary is not None else PredictionSummary(bundle)
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = _scored(batch, bundle, kept, version_id)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema) if table.schema != writer.schema else table)
            rows += batch.num_rows
            summary.add(table.column("prediction"))
            if progress is not None:
                progress.step(batch.num_rows)
        if writer is None:
            raise DataError("there are no rows to score")
        writer.close()
        os.replace(tmp, target)
    finally:
        if writer is not None and writer.is_open:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"rows": rows, **summary.result()}


class PredictionSummary:
    """What a deployment records about its predictions, by the kind of model: a binary
    classifier's ``positive_rate`` (share predicted as its second class), a multiclass
    classifier's ``class_shares``, a regressor's ``prediction_mean`` and ``prediction_std``."""

    def __init__(self, bundle) -> None:
        self.classes = list(getattr(bundle.model, "classes_", ()))
        self.counts: dict[Any, int] = {}
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, prediction) -> None:
        import pyarrow.compute as pc

        self.n += len(prediction)
        if self.classes:
            for item in pc.value_counts(prediction).to_pylist():
                self.counts[item["values"]] = self.counts.get(item["values"], 0) + item["counts"]
        else:
            values = pc.cast(prediction, "float64")
            self.total += float(pc.sum(values).as_py() or 0.0)
            self.squares += float(pc.sum(pc.multiply(values, values)).as_py() or 0.0)

    def merge(self, other: PredictionSummary) -> None:
        """Add the predictions ``other`` counted (e.g. another partition's)."""
        self.n, self.total, self.squares = self.n + other.n, self.total + other.total, self.squares + other.squares
        for value, n in other.counts.items():
            self.counts[value] = self.counts.get(value, 0) + n

    def result(self) -> dict[str, Any]:
        if not self.n:
            return {}
        if not self.classes:
            mean = self.total / self.n
            return {"prediction_mean": mean, "prediction_std": max(self.squares / self.n - mean * mean, 0.0) ** 0.5}
        if len(self.classes) == 2:
            positive = self.classes[1]
            positive = positive.item() if hasattr(positive, "item") else positive
            return {"positive_rate": self.counts.get(positive, 0) / self.n}
        return {"class_shares": {str(k): v / self.n for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1])}}


def _scored(batch, bundle, kept: list[str], version_id: str):
    """The kept columns of ``batch`` (their Arrow types unchanged) with the predictions."""
    import pyarrow as pa

    inputs = batch.select(bundle.input_names).to_pandas()
    predicted = bundle.predict(inputs)
    arrays = [batch.column(c) for c in kept]
    names = list(kept)
    if "score" in predicted:
        arrays.append(pa.array(predicted["score"].to_numpy(), type=pa.float64()))
        names.append("score")
    arrays.append(pa.array(predicted["prediction"].to_numpy()))
    names.append("prediction")
    arrays.append(pa.array([version_id] * batch.num_rows, type=pa.string()))
    names.append("model_version")
    return pa.Table.from_arrays(arrays, names=names)
