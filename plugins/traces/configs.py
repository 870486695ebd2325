"""Versioned LLM-application configuration as records: what a trace was produced with.

Record kinds: ``prompt_template``, ``retrieval_config``, ``tool_definition``,
``guardrail_config`` and ``question_set`` (a labelled set for RAG evaluation). Each is
content-addressed (its ``id`` is derived from the digest of its content, e.g.
``prompt-3f2a…``) and versioned per ``name``: saving new content adds the next version,
saving content already stored returns that record and writes nothing. Spans carry the
ids (``template_id``, ``config_id``), so the store sink links each trace to them and
``tether lineage`` walks from a bad answer back to the prompt version, the retrieval
settings and the index snapshot behind it.

    from tether.plugins.traces import configs
    prompt = configs.save(store, configs.PromptTemplate.build(
        name="answer", template="Answer from the context.\\n{context}\\nQ: {question}"))
    text = prompt.render(context=..., question=...)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import string
from typing import Any

import attrs
from tether.errors import ConfigError, reject_unknown_keys
from tether.names import check_name
from tether.records import record, utcnow

#: kind -> id prefix
PREFIXES = {"prompt_template": "prompt", "retrieval_config": "retrieval", "tool_definition": "tool",
            "guardrail_config": "guardrail", "question_set": "qset"}
#: fields every config record has besides its content
META = ("id", "name", "version", "digest", "created_at", "description")


def _content(rec: Any) -> dict[str, Any]:
    from tether import serde

    data = serde.converter.unstructure(rec)
    return {k: v for k, v in data.items() if k not in META}


def digest_of(content: dict[str, Any]) -> str:
    """``sha256:<hex>`` of canonical JSON of ``content``."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class _Config:
    """Shared behaviour of the config records (kept off the attrs fields)."""

    @classmethod
    def build(cls, **fields: Any) -> Any:
        """A record from its content fields, with ``id`` and ``digest`` computed and
        ``version`` left 0 until :func:`save` numbers it. Bad fields raise ConfigError."""
        name = fields.get("name")
        check_name(name, f"{cls.kind}.name", what=f"{cls.kind} name")
        allowed = [f.name for f in attrs.fields(cls) if f.name not in ("id", "version", "digest", "created_at")]
        reject_unknown_keys(fields, allowed, cls.kind, what="field")
        missing = [f.name for f in attrs.fields(cls) if f.name in allowed and f.default is attrs.NOTHING
                   and f.name not in fields]
        if missing:
            raise ConfigError(f"{cls.kind}: missing required field '{missing[0]}'", key=missing[0])
        draft = cls(id="", version=0, digest="", **fields)
        digest = digest_of({"kind": cls.kind, "name": name, **_content(draft)})
        return attrs.evolve(draft, id=f"{PREFIXES[cls.kind]}-{digest[7:23]}", digest=digest)

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"


def _int_at_least(low: int):
    def check(inst, attribute, value) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"must be an integer >= {low}, got {value!r}", key=attribute.name)
    return check


def _mapping(inst, attribute, value) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {value!r}", key=attribute.name)


def _text(inst, attribute, value) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"expected text, got {value!r}", key=attribute.name)


def _template_fields(template: str) -> tuple[str, ...]:
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ConfigError(f"not a valid template: {exc}", key="template") from None
    if any(not n.isidentifier() for n in names):
        raise ConfigError("placeholders must be plain names such as {question}", key="template")
    return tuple(dict.fromkeys(names))


@record("prompt_template")
class PromptTemplate(_Config):
    """A prompt template (``str.format`` placeholders such as ``{question}``)."""

    id: str
    name: str
    version: int
    digest: str
    template: str = attrs.field(validator=[_text, lambda inst, attribute, value: _template_fields(value)])
    model: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)  # provider, model, settings
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)

    @property
    def variables(self) -> tuple[str, ...]:
        return _template_fields(self.template)

    def render(self, **variables: Any) -> str:
        """The prompt with ``variables`` filled in; a missing or extra one is a ConfigError."""
        wanted = set(self.variables)
        missing, extra = sorted(wanted - set(variables)), sorted(set(variables) - wanted)
        if missing or extra:
            raise ConfigError(f"prompt {self.ref}: missing variables {missing}, unknown variables {extra}",
                              key="variables")
        return self.template.format(**variables)


@record("retrieval_config")
class RetrievalConfig(_Config):
    """How context is retrieved: chunking, embedding model, index snapshot, top-k, filters."""

    id: str
    name: str
    version: int
    digest: str
    embedding_model: str = attrs.field(validator=_text)
    embedding_model_version: str = ""
    index_snapshot: str = ""  # a snapshot id (linked in lineage) or an external index version
    top_k: int = attrs.field(default=5, validator=_int_at_least(1))
    chunking: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)  # size, overlap, strategy
    filters: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


@record("tool_definition")
class ToolDefinition(_Config):
    """A tool the model may call: its description and JSON Schema of its arguments."""

    id: str
    name: str
    version: int
    digest: str
    parameters: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)  # JSON Schema
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


@record("guardrail_config")
class GuardrailConfig(_Config):
    """Guardrail settings: which checks run, their thresholds and actions."""

    id: str
    name: str
    version: int
    digest: str
    checks: dict[str, Any] = attrs.field(factory=dict, validator=_mapping)  # check -> settings
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


def _questions(inst, attribute, value) -> None:
    if not isinstance(value, tuple) or not value:
        raise ConfigError("expected a non-empty list of questions", key="questions")
    seen = set()
    for i, q in enumerate(value):
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q.get("question"):
            raise ConfigError("expected {question: text, relevant: [chunk ids]}", key=f"questions[{i}]")
        relevant = q.get("relevant", [])
        if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
            raise ConfigError(f"expected a list of chunk ids, got {relevant!r}", key=f"questions[{i}].relevant")
        qid = str(q.get("id", i))
        if qid in seen:
            raise ConfigError(f"duplicate question id {qid!r}", key=f"questions[{i}].id")
        seen.add(qid)


@record("question_set")
class QuestionSet(_Config):
    """Labelled questions for RAG evaluation: each ``{id, question, relevant: [chunk ids],
    answer?: reference answer}``."""

    id: str
    name: str
    version: int
    digest: str
    questions: tuple[dict[str, Any], ...] = attrs.field(converter=tuple, validator=_questions)
    description: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


CONFIG_KINDS = (PromptTemplate, RetrievalConfig, ToolDefinition, GuardrailConfig, QuestionSet)


def save(store: Any, draft: Any, *, run_id: str | None = None) -> Any:
    """Store ``draft`` (from ``Cls.build``) as the next version of its name, or return the
    record already holding that content (a repeated save writes nothing). A retrieval
    config whose ``index_snapshot`` is a stored snapshot is linked to it in lineage."""
    existing = store.get(draft.id, kind=draft.kind)
    if existing is not None:
        return existing
    parents = []
    snapshot = getattr(draft, "index_snapshot", "")
    if snapshot and store.get(snapshot, kind="snapshot") is not None:
        parents.append((snapshot, "index"))
    return store.put_versioned(lambda n: attrs.evolve(draft, version=n, created_at=utcnow()), kind=draft.kind,
                               name=draft.name, parents=parents, run_id=run_id,
                               unchanged=lambda latest: getattr(latest, "digest", None) == draft.digest)
