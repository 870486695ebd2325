"""tether span dicts -> OpenTelemetry span name, kind and attributes.

Attribute names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``: model
calls, tool executions, token usage) and OpenInference (``openinference.span.kind``,
``input.value``/``output.value``, ``retrieval.documents.N.document.*``,
``llm.prompt_template.*``). Every other attribute is kept under ``tether.<key>``; values
that OpenTelemetry cannot hold (mappings, lists of mixed types) are sent as JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from tether.tracing import SPAN_TYPES

#: keys of an llm span's ``settings`` -> gen_ai request attribute
SETTINGS = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
            "top_k": "gen_ai.request.top_k", "max_tokens": "gen_ai.request.max_tokens",
            "seed": "gen_ai.request.seed", "stop": "gen_ai.request.stop_sequences",
            "frequency_penalty": "gen_ai.request.frequency_penalty",
            "presence_penalty": "gen_ai.request.presence_penalty"}


def otel_value(value: Any) -> Any:
    """A value OpenTelemetry accepts: scalars, homogeneous lists of scalars, else JSON text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value):
        return [float(v) for v in value] if any(isinstance(v, float) for v in value) else value
    return json.dumps(value, sort_keys=True, default=str)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "" and value != []:
        out[key] = otel_value(value)


def _llm(a: dict[str, Any], out: dict[str, Any]) -> None:
    _put(out, "gen_ai.operation.name", a.get("operation", "chat"))
    _put(out, "gen_ai.provider.name", a.get("provider"))
    _put(out, "gen_ai.request.model", a.get("model"))
    _put(out, "gen_ai.response.model", a.get("response_model") or a.get("model_version"))
    for key, name in SETTINGS.items():
        _put(out, name, (a.get("settings") or {}).get(key) if isinstance(a.get("settings"), dict) else None)
    _put(out, "gen_ai.usage.input_tokens", a.get("input_tokens"))
    _put(out, "gen_ai.usage.output_tokens", a.get("output_tokens"))
    finish = a.get("finish_reason")
    _put(out, "gen_ai.response.finish_reasons", [finish] if isinstance(finish, str) else finish)
    _put(out, "llm.model_name", a.get("model"))
    _put(out, "llm.provider", a.get("provider"))
    _put(out, "llm.token_count.prompt", a.get("input_tokens"))
    _put(out, "llm.token_count.completion", a.get("output_tokens"))
    if isinstance(a.get("settings"), dict):
        _put(out, "llm.invocation_parameters", json.dumps(a["settings"], sort_keys=True, default=str))
    _put(out, "input.value", a.get("prompt"))
    _put(out, "output.value", a.get("completion"))


def _retrieval(a: dict[str, Any], out: dict[str, Any]) -> None:
    _put(out, "gen_ai.data_source.id", a.get("index_snapshot"))
    _put(out, "gen_ai.request.top_k", a.get("top_k"))
    _put(out, "embedding.model_name", a.get("embedding_model"))
    _put(out, "input.value", a.get("query"))
    ids, scores = a.get("chunk_ids") or [], a.get("scores") or []
    for i, chunk in enumerate(ids if isinstance(ids, list) else []):
        _put(out, f"retrieval.documents.{i}.document.id", chunk)
        if isinstance(scores, list) and i < len(scores):
            _put(out, f"retrieval.documents.{i}.document.score", scores[i])


def _tool(a: dict[str, Any], out: dict[str, Any]) -> None:
    _put(out, "gen_ai.operation.name", "execute_tool")
    _put(out, "gen_ai.tool.name", a.get("tool"))
    _put(out, "gen_ai.tool.call.id", a.get("call_id"))
    _put(out, "gen_ai.tool.call.arguments", json.dumps(a.get("input"), default=str) if "input" in a else None)
    _put(out, "gen_ai.tool.call.result", json.dumps(a.get("output"), default=str) if "output" in a else None)
    _put(out, "tool.name", a.get("tool"))
    _put(out, "input.value", a.get("input"))
    _put(out, "output.value", a.get("output"))


def _prompt(a: dict[str, Any], out: dict[str, Any]) -> None:
    _put(out, "llm.prompt_template.template", a.get("template"))
    _put(out, "llm.prompt_template.version", a.get("template_version"))
    _put(out, "llm.prompt_template.variables", a.get("variables"))


def _text(a: dict[str, Any], out: dict[str, Any]) -> None:
    key = "input.value" if "text" in a else None
    if key:
        out[key] = otel_value(a["text"])


def _embedding(a: dict[str, Any], out: dict[str, Any]) -> None:
    _llm({"operation": "embeddings", **a}, out)


HANDLERS = {"llm": _llm, "embedding": _embedding, "retrieval": _retrieval, "tool": _tool, "prompt": _prompt,
            "query": _text}


def convert(span: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """``(name, kind, attributes)`` of the OpenTelemetry span for a tether span dict;
    ``kind`` is ``CLIENT`` for model calls, else ``INTERNAL``."""
    a, kind = span.get("attributes") or {}, span.get("type", "span")
    out: dict[str, Any] = {"openinference.span.kind": SPAN_TYPES.get(kind, "CHAIN"), "tether.span.type": kind,
                           "tether.trace_id": span["trace_id"]}
    handler = HANDLERS.get(kind)
    if handler is not None:
        handler(a, out)
    if kind == "output":
        _put(out, "output.value", a.get("text"))
    for key, value in a.items():
        _put(out, key if key.startswith("tether.") else f"tether.{key}", value)
    if span.get("error"):
        out["error.type"] = span["error"].get("type") or "error"
    name = str(span.get("name") or kind)
    if kind in ("llm", "embedding") and a.get("model"):
        name = f"{a.get('operation', 'chat' if kind == 'llm' else 'embeddings')} {a['model']}"
    elif kind == "tool" and a.get("tool"):
        name = f"execute_tool {a['tool']}"
    return name, "CLIENT" if kind in ("llm", "embedding") else "INTERNAL", out
