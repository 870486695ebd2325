"""The HTTP app (Starlette): ``POST /predict``, ``GET /health``, ``GET /metadata``.

Every response carries ``X-Request-ID`` (the client's, when it sent a usable one) and
every error is JSON ``{"error": ..., "request_id": ...}`` with the status of its cause:
400 malformed JSON, 422 a row the model's schema rejects (``field`` names the input), 404
an unknown version, 503 nothing deployed yet, 500 a model failure no fallback answered.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tether.errors import DataError, NotFoundError, TetherError

from .routing import NotReady, Router

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(headers) -> str:
    given = headers.get("x-request-id")
    return given if given and REQUEST_ID.match(given) else uuid.uuid4().hex


def _error(status: int, message: str, request_id: str, **extra: Any):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "request_id": request_id, **extra}, status_code=status,
                        headers={"X-Request-ID": request_id})


def _status_of(exc: Exception) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, NotReady):
        return 503
    if isinstance(exc, DataError):
        return 422
    return 500  # PredictionFailed: the model raised and no fallback answered


def create_app(router: Router, controller: Any = None, log: Any = None):
    """The Starlette application serving ``router``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request):
        rid = request_id_of(request.headers)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"malformed JSON body: {exc}", rid)
        single = isinstance(body, dict)
        if not single and not (isinstance(body, list) and body):
            return _error(422, "expected a JSON object (one row) or a non-empty list of objects", rid)
        try:
            answers = await run_in_threadpool(router.predict, [body] if single else body, request_id=rid,
                                              version=request.query_params.get("version"))
        except TetherError as exc:
            field = getattr(exc, "field", None)
            return _error(_status_of(exc), str(exc), rid, **({"field": field} if field else {}))
        except Exception as exc:  # a bug must not take the server down; say what failed
            return _error(500, f"internal error: {type(exc).__name__}: {exc}", rid)
        payload = {"request_id": rid, **answers[0]} if single else {"request_id": rid, "predictions": answers}
        return JSONResponse(payload, headers={"X-Request-ID": rid})

    async def health(request):
        rid = request_id_of(request.headers)
        body = health_of(router, controller, log)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503, headers={"X-Request-ID": rid})

    async def metadata(request):
        rid = request_id_of(request.headers)
        return JSONResponse(metadata_of(router), headers={"X-Request-ID": rid})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health),
                             Route("/metadata", metadata)])


def health_of(router: Router, controller: Any = None, log: Any = None) -> dict[str, Any]:
    """Readiness, the current plan, the arms' windows, the log and the control loop."""
    table = router.table
    plan = table.plan if table is not None else None
    body: dict[str, Any] = {"status": "ok" if plan is not None and plan.primary else "not_ready",
                            "environment": router.environment,
                            "deployment_id": plan.deployment_id if plan else None,
                            "strategy": plan.strategy if plan else None, "state": plan.state if plan else None,
                            "arms": {arm: w.summary() for arm, w in router.stats.arms.items()} if plan else {},
                            "shadow_dropped": router.mirror_dropped}
    if log is not None:
        body["log"] = {"folder": str(log.folder), "rows": log.written_rows, "files": log.files,
                       "dropped": log.dropped, "error": log.last_error}
    if controller is not None:
        body["control"] = {"error": controller.last_error, "polls": controller.ticks,
                           "decisions": list(controller.decisions)}
    return body


def metadata_of(router: Router) -> dict[str, Any]:
    """The deployment being served, its versions with their arms and schemas."""
    table = router.table
    if table is None:
        return {"environment": router.environment, "deployment": None, "versions": {}, "schema": None}
    plan = table.plan
    arms = {version: arm for arm, version in plan.arms.items()}
    answering = {plan.primary, plan.candidate if plan.mode == "canary" else None}
    versions = {v: {"arm": arms.get(v, "previous"), "answers": v in answering, "schema": getattr(m, "schema", None),
                    "digest": getattr(m, "digest", None)} for v, m in table.models.items()}
    return {"environment": router.environment,
            "deployment": {"id": plan.deployment_id, "strategy": plan.strategy, "state": plan.state,
                           "mode": plan.mode, "weight": round(plan.weight * 100, 3), "step": plan.step,
                           "steps": list(plan.steps), "sticky_key": plan.sticky_key, "fallback": plan.fallback,
                           "analysis": plan.analysis},
            "versions": versions, "schema": versions.get(plan.primary, {}).get("schema")}
