"""The router: picks the arm of every request from the current routing table, calls the
model, falls back when the model raises, mirrors traffic (shadow, blue-green warm-up) off
the response path, and records each answer in the arm windows and the prediction log.

The table (a plan plus its loaded models) is replaced by one reference assignment, so a
request sees one whole table from start to end: a switch never drops or mixes requests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import xxhash
from tether.errors import DataError, NotFoundError, TetherError

from .plan import CANARY, Plan
from .stats import Stats

SCALE = float(1 << 64)


class NotReady(TetherError):
    """No deployment is active in the environment, or its models are still loading."""


class PredictionFailed(TetherError):
    """The model raised and the deployment's fallback could not answer."""


def bucket(salt: str, key: Any) -> float:
    """A stable position in [0, 1) of an entity key: the same key always lands in the same
    place for a deployment, so a canary's keys stay on the canary as its share grows."""
    return xxhash.xxh64_intdigest(f"{salt}\0{key}".encode()) / SCALE


@attrs.frozen(kw_only=True)
class Table:
    """One routing plan with its models loaded (version -> bundle)."""

    plan: Plan
    models: dict[str, Any]
    rule: Callable[..., Any] | None = None

    @property
    def previous(self) -> str | None:
        """The version a failing one falls back to (``previous`` mode): the stable / blue one."""
        return self.plan.previous

    def route(self, row: dict[str, Any], fallback_key: str) -> tuple[str, str]:
        """(arm, version) of one request row."""
        plan = self.plan
        if plan.mode == CANARY:
            key = row.get(plan.sticky_key) if plan.sticky_key else None
            position = bucket(plan.deployment_id, fallback_key if key is None else key)
            if position < plan.weight:
                return "canary", plan.candidate
            return "stable", plan.primary
        arms = plan.arms
        arm = next(a for a, v in arms.items() if v == plan.primary)
        return arm, plan.primary

    def arm_of_version(self, version: str) -> str:
        return next((a for a, v in self.plan.arms.items() if v == version), "pinned")


class Router:
    """Answers predictions from the current :class:`Table` (``None`` until one is loaded)."""

    def __init__(self, *, environment: str, log: Any = None, stats: Stats | None = None,
                 mirror_queue: int = 10_000) -> None:
        self.environment = environment
        self.table: Table | None = None
        self.log = log
        self.stats = stats or Stats()
        self.mirror_dropped = 0
        self._mirrored: tuple[tuple | None, int] = (None, 0)  # requests mirrored under the current plan
        self._mirror_lock = threading.Lock()
        self._mirror: queue.Queue = queue.Queue(mirror_queue)
        self._mirror_thread = threading.Thread(target=self._mirror_loop, name="tether-shadow", daemon=True)
        self._mirror_thread.start()

    def swap(self, table: Table | None) -> None:
        """Make ``table`` current (one reference assignment) and open new arm windows."""
        if table is not None:
            arms = dict(table.plan.arms)
            if table.previous and table.previous not in arms.values():
                arms["fallback"] = table.previous
            self.stats.reset(table.plan.token, arms)
        self.table = table

    # -- the request path ------------------------------------------------------------------

    def predict(self, rows: list[dict[str, Any]], *, request_id: str, version: str | None = None) -> list[dict]:
        """One answer per row: its outputs plus ``model_version`` and ``arm``."""
        table = self.table  # one table for the whole request
        if table is None or table.plan.primary is None:
            raise NotReady(f"no active deployment is loaded for environment '{self.environment}'")
        if version is not None and version not in table.models:
            raise NotFoundError(f"model version '{version}' is not served in environment '{self.environment}' "
                                f"(served: {', '.join(table.models)})")
        groups: dict[tuple[str, str], list[int]] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"row {i}: expected a JSON object of input fields, got {type(row).__name__}")
            choice = ((table.arm_of_version(version), version) if version is not None
                      else table.route(row, f"{request_id}:{i}"))
            groups.setdefault(choice, []).append(i)
        answers: list[dict | None] = [None] * len(rows)
        entries = []
        for (arm, ver), index in groups.items():
            part = [rows[i] for i in index]
            for i, answer, entry in zip(index, *self._answer(table, arm, ver, part, request_id)):
                answers[i] = answer
                entries.append(entry)
        if table.plan.mirror and version is None:
            self._mirror_request(table, rows, request_id)
        if self.log is not None:
            self.log.add(entries)
        return answers

    def _answer(self, table: Table, arm: str, version: str, rows: list[dict], request_id: str):
        model = table.models[version]
        started = time.perf_counter()
        try:
            outputs = _records(model.predict(rows))  # validates first
        except DataError:
            raise  # the request's fault (SchemaError names the field): HTTP 422, no fallback
        except Exception as exc:
            failed = (time.perf_counter() - started) * 1000
            self._count(table, arm, failed, error=True)
            return self._fall_back(table, version, rows, request_id, exc)
        latency = (time.perf_counter() - started) * 1000
        self._count(table, arm, latency, error=False, inputs=rows, outputs=outputs)
        answers = [{**out, "model_version": version, "arm": arm} for out in outputs]
        entries = [self._entry(table, arm, version, request_id, latency, row, out) for row, out in zip(rows, outputs)]
        return answers, entries

    def _fall_back(self, table: Table, version: str, rows: list[dict], request_id: str, exc: Exception):
        """Answer rows whose model raised, by the deployment's fallback mode: ``previous``
        (the stable / previous version answers), ``rule`` (the user's function of the
        validated rows), ``recommend_only`` (the previous version's answer, or none, flagged
        as a recommendation) or ``none`` (an error)."""
        mode = table.plan.fallback.get("mode") or "previous"
        error = f"{type(exc).__name__}: {exc}"
        flag = {"fallback": mode, **({"recommend_only": True} if mode == "recommend_only" else {})}
        if mode in ("previous", "recommend_only") and table.previous and table.previous != version:
            answers, entries = self._answer(table, "fallback", table.previous, rows, request_id)
            for entry in entries:
                entry.update(status="fallback", error=error)
            return [{**a, **flag} for a in answers], entries
        if mode == "rule" and table.rule is not None:
            values = list(table.rule(table.models[version].validate(rows)))
            outputs = [{"prediction": _plain(v)} for v in values]
        elif mode == "recommend_only":
            outputs = [{"prediction": None} for _ in rows]
        else:
            outputs = None
        if outputs is not None:
            answers = [{**o, "model_version": None, "arm": "fallback", **flag} for o in outputs]
        else:
            raise PredictionFailed(f"model version {version} failed ({error}) and deployment "
                                   f"{table.plan.deployment_id} has no fallback that can answer (mode '{mode}')")
        entries = [self._entry(table, "fallback", None, request_id, 0.0, row, out, status="fallback", error=error)
                   for row, out in zip(rows, outputs)]
        return answers, entries

    def _count(self, table: Table, arm: str, latency: float, *, error: bool, inputs=None, outputs=()) -> None:
        window = self.stats.arm(table.plan.token, arm)
        if window is None:
            return
        keep = table.plan.mode == CANARY  # only the canary analysis reads them
        window.add(latency, error=error, inputs=inputs if keep and inputs else [], outputs=outputs if keep else [])

    def _entry(self, table: Table, arm: str, version: str | None, request_id: str, latency: float, row: dict,
               outputs: dict, *, status: str = "ok", error: str | None = None) -> dict[str, Any]:
        plan = table.plan
        return {"timestamp": time.time(), "request_id": request_id, "environment": self.environment,
                "deployment_id": plan.deployment_id, "strategy": plan.strategy, "arm": arm,
                "model_version": version, "status": status, "error": error, "latency_ms": latency,
                "inputs": row, "outputs": outputs}

    # -- shadow traffic ----------------------------------------------------------------------

    def _mirror_request(self, table: Table, rows: list[dict], request_id: str) -> None:
        """Queue a copy of the request for the mirror version (a ``mirror_share`` of the
        requests, by a hash of the request id; at most ``mirror_limit`` per plan)."""
        plan = table.plan
        if plan.mirror_share < 1.0 and bucket(f"{plan.deployment_id}:mirror", request_id) >= plan.mirror_share:
            return
        if plan.mirror_limit is not None:
            with self._mirror_lock:
                token, count = self._mirrored
                count = count + 1 if token == plan.token else 1
                self._mirrored = (plan.token, count)
            if count > plan.mirror_limit:
                return
        try:
            self._mirror.put_nowait((table, rows, request_id))
        except queue.Full:
            self.mirror_dropped += 1

    def _mirror_loop(self) -> None:
        while True:
            item = self._mirror.get()
            if item is None:
                return
            table, rows, request_id = item
            version = table.plan.mirror
            arm = table.arm_of_version(version)
            model = table.models[version]
            started = time.perf_counter()
            try:
                outputs = _records(model.predict(rows))
                error = None
            except Exception as exc:  # a failing shadow is logged, never surfaced
                outputs, error = [{} for _ in rows], f"{type(exc).__name__}: {exc}"
            latency = (time.perf_counter() - started) * 1000
            self._count(table, arm, latency, error=error is not None)
            if self.log is not None:
                self.log.add([self._entry(table, arm, version, request_id, latency, row, out,
                                          status="error" if error else "ok", error=error)
                              for row, out in zip(rows, outputs)])
            self._mirror.task_done()

    def drain_mirror(self) -> None:
        """Wait until every mirrored request was answered (tests, shutdown)."""
        self._mirror.join()

    def close(self) -> None:
        self._mirror.put(None)
        self._mirror_thread.join(5)


def _plain(value: Any) -> Any:
    """A JSON-ready Python value of a numpy/pandas scalar."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _records(frame) -> list[dict[str, Any]]:
    """A prediction frame as one plain dict per row."""
    columns = list(frame.columns)
    return [dict(zip(columns, map(_plain, values))) for values in frame.itertuples(index=False, name=None)]
