"""The registry's append-only record kinds: status transitions, alias moves and approvals.

A registered ``ModelVersion`` never changes; what happens to it afterwards is written as
one of these records, numbered per model name without gaps (``version`` is the record's
position in that model's log of its kind, not the model version it is about), so the
state of a model at any moment is replayed from them (see :mod:`.state`).
"""

from __future__ import annotations

import datetime as dt

import attrs
from tether.records import record, utcnow

#: The statuses, in lifecycle order.
STATUSES: tuple[str, ...] = ("experimental", "candidate", "production", "deprecated", "archived")
#: Statuses written by earlier releases, and what they read as.
LEGACY_STATUSES: dict[str, str] = {"registered": "experimental"}


@record("model_transition")
class ModelTransition:
    """A model version moved from one status to another."""

    id: str  # "mt-<model>-<n>"
    name: str  # the model name
    version: int  # n: this transition's position in the model's transition log
    model_version_id: str
    from_status: str
    to_status: str
    actor: str
    reason: str = ""
    #: the evaluation gate was overridden; ``reason`` is the justification
    override: bool = False
    #: the approvals (``ModelApproval`` ids) the transition relied on
    approvals: tuple[str, ...] = ()
    created_at: dt.datetime = attrs.field(factory=utcnow)


@record("model_alias")
class ModelAlias:
    """An alias (``champion``) pointed at a model version, or removed (``model_version_id``
    ``None``)."""

    id: str  # "ma-<model>-<n>"
    name: str
    version: int  # n: this change's position in the model's alias log
    alias: str
    model_version_id: str | None
    previous_id: str | None = None  # the version the alias pointed at before
    actor: str = ""
    reason: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)


@record("model_approval")
class ModelApproval:
    """A request to move a version to a status, or an approver's decision on it."""

    id: str  # "mp-<model>-<n>"
    name: str
    version: int  # n: this entry's position in the model's approval log
    model_version_id: str
    action: str  # request | approve | reject
    to_status: str
    actor: str
    reason: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)
