"""The feature catalogue: definitions, parsing a catalogue file, storing versions, lookups.

A catalogue is a YAML file with a ``features`` list; each entry becomes a
:class:`FeatureDefinition` (record kind ``feature``). :func:`apply_definitions` stores a
new version only when a definition's declared fields changed; :func:`models_using` finds
the model versions depending on a feature through lineage (definition -> feature set ->
model -> version).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from tether.errors import ConfigError, reject_unknown_keys
from tether.records import record, utcnow

from .pit import to_timedelta

CATALOGUE_KEYS = ("name", "description", "owner", "entity", "source", "calculation", "timestamp", "window",
                  "valid_range", "allowed_values", "refresh", "availability_lag", "available_at", "ttl", "tags",
                  "dtype", "max_missing_share", "max_cardinality")
DTYPES = ("float", "int", "bool", "string", "category", "timestamp")
#: A ``module:function`` reference (a Python calculation, source or transform factory).
PY_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")
_TEXT_KEYS = ("description", "owner", "entity", "source", "calculation", "timestamp", "window", "refresh",
              "available_at", "dtype")


@record("feature")
class FeatureDefinition:
    """One version of a feature's definition, as declared in a catalogue.

    ``availability_lag`` is how long after ``timestamp`` the value becomes known (a
    duration such as ``"2d"``); ``available_at`` optionally names a column holding that
    instant per row; ``ttl`` is how old a value may be before it counts as missing.
    ``digest`` covers every declared field, so an unchanged definition keeps its version.
    """

    id: str
    name: str
    version: int
    digest: str
    description: str = ""
    owner: str = ""
    entity: str = ""
    source: str = ""
    calculation: str = ""
    timestamp: str = ""
    window: str = ""
    valid_range: tuple[float | None, float | None] | None = None
    allowed_values: tuple[Any, ...] = ()
    refresh: str = ""
    availability_lag: str = ""
    available_at: str = ""
    ttl: str = ""
    tags: tuple[str, ...] = ()
    dtype: str = ""
    max_missing_share: float | None = None
    max_cardinality: int | None = None
    catalogue: str = ""
    created_at: dt.datetime = attrs.field(factory=utcnow)

    @property
    def lag(self):
        return to_timedelta(self.availability_lag or None, what=f"feature '{self.name}': availability_lag")

    @property
    def time_to_live(self):
        return to_timedelta(self.ttl or None, what=f"feature '{self.name}': ttl")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def definition_digest(fields: Mapping[str, Any]) -> str:
    text = json.dumps({k: _plain(fields.get(k)) for k in CATALOGUE_KEYS}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- Parsing ----------------------------------------------------------------------------


def parse_catalogue(raw: Any, source: str = "catalogue") -> list[dict[str, Any]]:
    """Validate a parsed catalogue; returns each definition's fields. Errors name the key path."""
    if not isinstance(raw, dict) or not isinstance(raw.get("features"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'features' list")
    out, seen = [], set()
    for i, entry in enumerate(raw["features"]):
        where = f"{source}: features[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with at least 'name', got {entry!r}")
        reject_unknown_keys(entry, CATALOGUE_KEYS, where)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name: expected a feature name (letters, digits, _ . -), got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name: feature '{name}' is defined twice")
        seen.add(name)
        out.append(_parse_entry(entry, name, f"{source}: features[{i}] ({name})"))
    return out


def _parse_entry(entry: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """One catalogue entry's fields, each checked; ``where`` prefixes every error."""
    fields: dict[str, Any] = {"name": name}
    for key in _TEXT_KEYS:
        value = entry.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
        fields[key] = value
    for key in ("availability_lag", "ttl"):
        fields[key] = _duration(entry.get(key), f"{where}.{key}")
    if fields["dtype"] and fields["dtype"] not in DTYPES:
        raise ConfigError(f"{where}.dtype: {fields['dtype']!r} is not one of {', '.join(DTYPES)}")
    fields["valid_range"] = _valid_range(entry.get("valid_range"), f"{where}.valid_range")
    allowed = entry.get("allowed_values") or []
    if not isinstance(allowed, list):
        raise ConfigError(f"{where}.allowed_values: expected a list, got {allowed!r}")
    fields["allowed_values"] = tuple(allowed)
    tags = entry.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(f"{where}.tags: expected a list of strings, got {tags!r}")
    fields["tags"] = tuple(tags)
    share = entry.get("max_missing_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1):
        raise ConfigError(f"{where}.max_missing_share: expected a share between 0 and 1, got {share!r}")
    fields["max_missing_share"] = None if share is None else float(share)
    card = entry.get("max_cardinality")
    if card is not None and (isinstance(card, bool) or not isinstance(card, int) or card < 1):
        raise ConfigError(f"{where}.max_cardinality: expected a positive integer, got {card!r}")
    fields["max_cardinality"] = card
    return fields


def _duration(value: Any, where: str) -> str:
    """A declared duration as text (``""`` when absent), checked to parse."""
    if value in (None, ""):
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as '2d' or '6h', got {value!r}")
    to_timedelta(str(value), what=f"{where}:")
    return str(value)


def _valid_range(rng: Any, where: str) -> tuple[float | None, float | None] | None:
    """``[low, high]`` numbers (``null`` for an open side) as a tuple, or ``None``."""
    if rng is None:
        return None
    if (not isinstance(rng, list) or len(rng) != 2
            or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in rng)):
        raise ConfigError(f"{where}: expected [low, high] numbers (null for open), got {rng!r}")
    if None not in rng and rng[0] > rng[1]:
        raise ConfigError(f"{where}: low {rng[0]} is above high {rng[1]}")
    return tuple(rng)


def load_catalogue(path: str | Path) -> list[FeatureDefinition]:
    """Read a catalogue file into (unversioned, ``version=0``) definitions."""
    from tether.documents import read_yaml_file

    raw = read_yaml_file(path, "feature catalogue")
    return [definition_from_fields(f, catalogue=str(path)) for f in parse_catalogue(raw, f"feature catalogue '{path}'")]


def definition_from_fields(fields: Mapping[str, Any], *, version: int = 0, catalogue: str = "") -> FeatureDefinition:
    digest = definition_digest(fields)
    return FeatureDefinition(id=f"feature-{fields['name']}-{version}", version=version, digest=digest,
                             catalogue=catalogue, **{k: fields[k] for k in CATALOGUE_KEYS if k in fields})


def define(name: str, **fields: Any) -> FeatureDefinition:
    """A definition from Python: ``define("spend_7d", entity="customer_id", calculation=...)``."""
    raw = {"features": [{"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}]}
    return definition_from_fields(parse_catalogue(raw, f"feature '{name}'")[0])


# --- Stored versions and lookups ------------------------------------------------------------


def apply_definitions(store, definitions: Iterable[FeatureDefinition], *, run_id: str | None = None):
    """Store each definition as a new version unless the latest stored one is identical.

    Idempotent under concurrency: whether the latest version differs is decided again in
    the store's write transaction (``put_versioned(..., unchanged=)``), so concurrent
    applies of one catalogue store each changed definition once.

    Returns ``[(definition as stored, "created" | "updated" | "unchanged")]``.
    """
    results = []
    for definition in definitions:
        latest = latest_definition(store, definition.name)
        if latest is not None and latest.digest == definition.digest:
            results.append((latest, "unchanged"))
            continue
        built: list[int] = []

        def build(version: int, d=definition, built=built):
            built.append(version)
            return attrs.evolve(d, id=f"feature-{d.name}-{version}", version=version, created_at=utcnow())

        # Decided again inside the store's transaction: a concurrent apply may have stored it.
        stored = store.put_versioned(build, kind="feature", name=definition.name, run_id=run_id,
                                     unchanged=lambda stored, d=definition: stored.digest == d.digest)
        status = "unchanged" if not built else "created" if built[0] == 1 else "updated"
        results.append((stored, status))
    return results


def latest_definition(store, name: str) -> FeatureDefinition | None:
    found = store.find("feature", name=name, limit=1)
    return found[0] if found else None


def all_definitions(store) -> list[FeatureDefinition]:
    """The latest version of every stored definition, by name."""
    latest: dict[str, FeatureDefinition] = {}
    for d in store.find("feature"):
        if d.name not in latest or d.version > latest[d.name].version:
            latest[d.name] = d
    return [latest[n] for n in sorted(latest)]


def models_using(store, name: str) -> list[dict[str, Any]]:
    """Model versions depending on any version of feature ``name``, through lineage."""
    from tether.plugins.registry.state import status_of

    used: dict[str, dict[str, Any]] = {}
    for definition in store.find("feature", name=name):
        for edge in store.lineage(definition.id)["downstream"]:
            if edge["kind"] == "model_version" and edge["child"] not in used:
                mv = store.get(edge["child"], kind="model_version")
                if mv is not None:
                    used[mv.id] = {"model_version": mv.id, "name": mv.name, "version": mv.version,
                                   "feature_version": definition.version, "status": status_of(store, mv)}
    return sorted(used.values(), key=lambda r: (r["name"], r["version"]))
