"""HTML reports: one Jinja2 environment, one base page and offline Plotly charts for every
page tether writes (monitor, leakage audit, evaluation).

This package is a library, not a plugin: it implements no hooks and is not loaded by the
plugin host. Modules, by concern:

* :mod:`.pages` - the Jinja2 environment (autoescaping, strict undefined), rendering a page
  from a template and writing it atomically;
* :mod:`.charts` - Plotly figures and their embedding (plotly.js is inlined once per page
  from the installed ``plotly`` package: no CDN, no network);
* :mod:`.evaluation` - the evaluation page of an ``Evaluation`` record.

The functions below import Jinja2 and Plotly only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def render_page(template: str, *, title: str, package: str | None = None,
                figures: Mapping[str, Any] | None = None, **context: Any) -> str:
    """Render ``template`` (found in ``package``'s ``templates/`` folder, then in this
    package's) into a self-contained HTML page; see :func:`tether.plugins.reports.pages.render_page`."""
    from .pages import render_page as render

    return render(template, title=title, package=package, figures=figures, **context)


def write_page(path: str | Path, html: str) -> Path:
    """Write a page atomically (a temporary file renamed into place); returns the path."""
    from .pages import write_page as write

    return write(path, html)


def evaluation_html(evaluation: Mapping[str, Any], *, lineage: Mapping[str, Any] | None = None,
                    title: str | None = None) -> str:
    """The evaluation page of an ``Evaluation`` record's JSON form (``tether.serde.to_dict``)."""
    from .evaluation import evaluation_html as render

    return render(evaluation, lineage=lineage, title=title)
