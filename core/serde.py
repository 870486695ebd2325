"""The one cattrs converter tether serializes records with.

Rules (see :func:`configure_converter`):

* ``datetime`` <-> ISO-8601 string, always UTC (naive datetimes are taken as UTC);
* ``pathlib.Path`` <-> string;
* tuples and sets <-> lists;
* unknown keys are rejected (``forbid_extra_keys``), so a typo never passes silently;
* a record is wrapped in an envelope ``{"kind", "schema_version", "data"}``; reading a
  record written by a newer schema version fails with a clear error.

JSON output is stable: keys sorted, no whitespace variance, so equal records give equal
text and equal digests.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import attrs
import cattrs
from cattrs.preconf.json import make_converter as _json_converter

from .errors import TetherError
from .records import RECORD_KINDS


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def configure_converter(converter: cattrs.Converter) -> None:
    """Register tether's rules (listed in the module docstring) on ``converter``."""
    converter.register_unstructure_hook(dt.datetime, lambda v: _to_utc(v).isoformat())
    converter.register_structure_hook(
        dt.datetime, lambda v, _: _to_utc(v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v))
    )
    converter.register_unstructure_hook(pathlib.Path, str)
    converter.register_structure_hook(pathlib.Path, lambda v, _: pathlib.Path(v))
    converter.register_structure_hook(Any, lambda v, _: v)


def make_converter() -> cattrs.Converter:
    """A fresh converter with tether's rules; used for records and for config parsing."""
    converter = _json_converter(forbid_extra_keys=True)
    configure_converter(converter)
    return converter


converter = make_converter()


def make_strict_converter() -> cattrs.Converter:
    """The converter of backend params: scalars must already have the declared type (YAML
    gives it), so ``"5"`` is no int and ``true`` no number."""
    conv = make_converter()

    def strict(expected, accept):
        def hook(value, _):
            if isinstance(value, bool) and expected is not bool:
                raise TypeError(f"expected {expected.__name__}, got a boolean")
            if not isinstance(value, accept):
                raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")
            return expected(value)

        return hook

    conv.register_structure_hook(int, strict(int, int))
    conv.register_structure_hook(float, strict(float, (int, float)))
    conv.register_structure_hook(str, strict(str, str))
    conv.register_structure_hook(bool, strict(bool, bool))
    return conv


def to_dict(obj) -> dict:
    """Unstructure a record into its envelope."""
    return {
        "kind": obj.kind,
        "schema_version": obj.schema_version,
        "data": converter.unstructure(obj),
    }


def from_dict(payload: dict):
    """Structure an envelope back into its record class."""
    try:
        kind = payload["kind"]
        version = int(payload["schema_version"])
        data = payload["data"]
    except (KeyError, TypeError, ValueError) as exc:
        raise TetherError(f"not a tether record envelope (missing {exc})") from None
    cls = RECORD_KINDS.get(kind)
    if cls is None:
        raise TetherError(f"unknown record kind '{kind}'; this tether knows {sorted(RECORD_KINDS)}")
    if version > cls.schema_version:
        raise TetherError(
            f"record kind '{kind}' has schema version {version}, newer than this tether's "
            f"{cls.schema_version}; upgrade tether to read it"
        )
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError) as exc:
        raise TetherError(f"invalid {kind} record: {'; '.join(describe_structure_error(exc))}") from None


def dumps(obj) -> str:
    """Stable JSON text of a record (sorted keys, compact)."""
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), default=str)


def loads(text: str | bytes):
    return from_dict(json.loads(text))


def structure_problems(exc: BaseException, path: str = "") -> list[tuple[str, str]]:
    """``(key path, problem)`` for each problem in a cattrs structuring error; nested
    parameters give dotted paths (``health.max_lag_hours``)."""
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return [(path, f"unknown parameter {', '.join(repr(k) for k in sorted(exc.extra_fields))}")]
    if not isinstance(exc, cattrs.BaseValidationError):
        args = getattr(exc, "args", ())
        if len(args) > 1 and isinstance(args[1], attrs.Attribute):  # attrs' validators: (message, attribute, ...)
            return [(".".join(p for p in (path, args[1].name) if p), str(args[0]))]
        key = getattr(exc, "key", None)  # a ConfigError raised by a validator, naming its parameter
        if key:
            path = path + key if key.startswith("[") else ".".join(p for p in (path, key) if p)
        return [(path, str(exc))]
    problems: list[tuple[str, str]] = []
    for sub in exc.exceptions:
        note = next((n for n in getattr(sub, "__notes__", []) if isinstance(n, str)), "")
        field = ""
        if "attribute" in note:
            field = note.split("attribute ")[-1].split(" (")[0].strip("'\"")
        elif "index" in note:
            field = f"[{note.split('index ')[-1].split(' ')[0]}]"
        elif "key" in note:
            field = note.split("key ")[-1].split(" ")[0].strip("'\"")
        sub_path = path + field if field.startswith("[") else ".".join(p for p in (path, field) if p)
        if isinstance(sub, cattrs.ForbiddenExtraKeysError):
            problems.extend(structure_problems(sub, path))
        elif isinstance(sub, KeyError):
            problems.append((path, f"missing required parameter {field or sub}"))
        else:
            problems.extend(structure_problems(sub, sub_path))
    return problems


def describe_structure_error(exc: BaseException) -> list[str]:
    """Readable messages for a cattrs structuring error, one per problem."""
    return [f"{path}: {problem}" if path else problem for path, problem in structure_problems(exc)]
