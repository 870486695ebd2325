"""SQL text that tether builds itself: identifiers are quoted here, values are always
bound as parameters, never formatted into the statement."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A SQL identifier (column, table) in double quotes, embedded quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'
