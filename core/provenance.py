"""What a run was made with: code (git), environment (Python, platform, package versions),
params flattened to key paths, and seeds. Everything here is cheap and imports nothing heavy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Distributions whose versions every run records (besides those a chain names).
PACKAGES = ("tether", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy")

#: Parameter names a run records as seeds (``seed``, ``random_state`` and ``*_seed``).
SEED_NAMES = ("seed", "random_state")


def _git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


def code_version(cwd: str | Path | None = None) -> dict[str, Any]:
    """``tether`` and ``python`` versions, and for code in a git work tree ``git_commit``,
    ``git_branch`` (empty when detached), ``git_dirty`` (a boolean: uncommitted changes or
    untracked files) and, when dirty, ``git_diff_sha256``: the SHA-256 of ``git diff HEAD``
    (tracked changes; untracked files make the tree dirty but are not in the digest)."""
    from . import __version__

    code: dict[str, Any] = {"tether": __version__, "python": platform.python_version()}
    where = Path(cwd) if cwd else None
    head = _git(["rev-parse", "HEAD"], where)
    if head is None or head.returncode != 0:
        return code
    code["git_commit"] = head.stdout.decode().strip()
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], where)
    name = branch.stdout.decode().strip() if branch is not None and branch.returncode == 0 else ""
    code["git_branch"] = "" if name == "HEAD" else name
    status = _git(["status", "--porcelain"], where)
    code["git_dirty"] = bool(status is not None and status.stdout.strip())
    if code["git_dirty"]:
        diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], where)
        if diff is not None and diff.returncode == 0:
            code["git_diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()
    return code


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of those of ``names`` that are installed."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        except ValueError:  # not a valid distribution name
            continue
    return versions


#: import name -> distribution of the packages every run records anyway
_IMPORT_NAMES = {"tether": "tether", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
                 "sklearn": "scikit-learn", "scipy": "scipy"}


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def _installed(top: str) -> bool:
    """Whether the top-level package ``top`` is installed (not the user's own code)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec is not None else ""
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return any(part in path for path in [origin, *locations] for part in ("site-packages", "dist-packages"))


def distributions_of(modules: Iterable[str]) -> list[str]:
    """The installed distributions providing the top-level packages of dotted ``modules``
    (the user's own modules, outside site-packages, have none)."""
    from importlib import metadata

    found: set[str] = set()
    for top in {m.split(".")[0] for m in modules if m}:
        if top in _IMPORT_NAMES:
            found.add(_IMPORT_NAMES[top])
            continue
        if not _installed(top):
            continue
        try:
            found.add(metadata.distribution(top).metadata["Name"])
        except metadata.PackageNotFoundError:  # import name differs from the distribution name
            found.update(_packages_distributions().get(top, []))
    return sorted(found)


def environment(extra_packages: Iterable[str] = ()) -> dict[str, Any]:
    """``python``, ``implementation``, ``platform`` and ``packages``: the versions of
    :data:`PACKAGES` and of ``extra_packages``."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions([*PACKAGES, *extra_packages]),
    }


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as ``{"a.b.c": value}``: scalars kept, lists and other values as
    JSON text (sorted keys), so every value is a str, int, float, bool or ``None``. Text
    under a secret-looking key (``password``, ``token``, ``dsn``...) is masked, and known
    secrets (``${VAR}`` values, URL passwords) are masked wherever they appear."""
    from .secrets import MASK, SECRET_KEYS, redact

    out: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
            continue
        if not (value is None or isinstance(value, (str, int, float, bool))):
            value = json.dumps(value, sort_keys=True, default=str)
        if isinstance(value, str):
            value = MASK if SECRET_KEYS.search(str(key)) and value else redact(value)
        out[path] = value
    return out


def is_seed_name(name: str) -> bool:
    return name in SEED_NAMES or name.endswith("_seed")


def seeds_in(params: Mapping[str, Any], prefix: str) -> dict[str, int]:
    """The integer seeds among a stage's top-level params: ``{"<prefix>.seed": 7}``."""
    return {f"{prefix}.{k}": int(v) for k, v in params.items()
            if is_seed_name(str(k)) and isinstance(v, int) and not isinstance(v, bool)}
