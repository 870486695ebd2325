"""Reading the YAML and TOML documents users write: chains, catalogues, policies, configs.

YAML goes through ``yaml.SafeLoader`` only (no Python objects), with two more refusals:
a key written twice in one mapping (YAML says keys are unique; last-wins would hide a
mistake), and a document whose aliases expand to more than :data:`MAX_VALUES` values (an
"alias bomb" that would otherwise take minutes and gigabytes to walk).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Most values (scalars, lists and mappings) a document may hold once aliases are expanded.
MAX_VALUES = 100_000
#: Largest document read, in bytes.
MAX_BYTES = 16 * 1024 * 1024


def _loader_class():
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key; SafeLoader reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}' (first at line {seen[key].line + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    return Loader


def _expanded_size(node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (memoized per node)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once; SafeLoader builds it lazily
    size = 1
    if isinstance(node.value, list):
        for item in node.value:
            if isinstance(item, tuple):
                size += _expanded_size(item[0], memo) + _expanded_size(item[1], memo)
            else:
                size += _expanded_size(item, memo)
            if size > MAX_VALUES:
                break
    memo[id(node)] = size
    return size


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` safely; errors are ConfigErrors naming ``source`` and the line."""
    import yaml

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_VALUES:
            raise ConfigError(f"{source}: the document expands to more than {MAX_VALUES:,} values "
                              "through its aliases; write it out without nested aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


def parse_text(text: str, source: str, suffix: str) -> Any:
    """Parse a document: TOML if ``suffix`` is ``.toml``, else YAML (see :func:`parse_yaml`)."""
    if suffix != ".toml":
        return parse_yaml(text, source)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None


def read_text(path: Path, what: str) -> str:
    """The text of a user's file; missing, too large or unreadable files are ConfigErrors."""
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' not found")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{what} '{path}' is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} '{path}' cannot be read: {exc}") from None


def read_yaml_file(path: str | os.PathLike, what: str) -> Any:
    """Parse a YAML file; a missing, unreadable or invalid file is a ConfigError naming
    ``what`` and the path (``feature catalogue 'f.yaml' not found``)."""
    path = Path(path)
    return parse_yaml(read_text(path, what), f"{what} '{path}'")
