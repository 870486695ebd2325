"""How to install an extra for this installation of tether (named in errors about a
missing optional dependency)."""

from __future__ import annotations

from typing import Any


def install_hint(extras: list[str]) -> str:
    """The command that installs ``extras`` for this installation of tether: from PyPI, or
    from the folder it was installed from (``pip install -e '<clone>[redis]'`` for a clone)."""
    import json
    from importlib import metadata

    wanted = ",".join(sorted(extras))
    direct: dict[str, Any] = {}
    for dist in metadata.distributions(name="tether"):  # a source folder's egg-info lacks the file
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        if direct:
            break
    url = direct.get("url", "")
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        folder = unquote(urlparse(url).path)
        editable = "-e " if direct.get("dir_info", {}).get("editable") else ""
        return f"pip install {editable}'{folder}[{wanted}]'"
    return f"pip install 'tether[{wanted}]'"
