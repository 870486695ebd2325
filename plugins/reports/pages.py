"""Rendering pages: the Jinja2 environment every tether HTML page is built with.

Templates are package data. A page template extends ``base.html`` (shared CSS, the
page header, the chart scripts) and may import ``macros.html`` (tables, badges, charts).
A plugin adds a page by shipping its own ``templates/`` folder and passing its package
name: its templates are searched first, then this package's, so ``{% extends "base.html" %}``
works from any plugin.

Every value is escaped (autoescape on) and an undefined name is an error
(``StrictUndefined``), so a typo in a template fails the render instead of showing a blank.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = "tether.plugins.reports"


def num(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, thousands separators for integers,
    ``""`` for missing values and ``"n/a"`` for NaN or infinity."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return format(value, f".{digits}g")
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage (``0.125`` -> ``12.5%``); ``""`` when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}%}"


@cache
def environment(package: str | None = None):
    """The Jinja2 environment for pages of ``package`` (its ``templates/`` folder first,
    then this package's). Cached: one environment per package."""
    import jinja2

    loaders = [jinja2.PackageLoader(package, "templates")] if package and package != PACKAGE else []
    loaders.append(jinja2.PackageLoader(PACKAGE, "templates"))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(num=num, pct=pct)
    return env


def render_page(template: str, *, title: str, package: str | None = None,
                figures: Mapping[str, Any] | None = None, **context: Any) -> str:
    """Render ``template`` into one self-contained HTML page.

    :param template: template file name, e.g. ``"monitor_report.html"``.
    :param title: the page's ``<title>`` and heading (escaped like every value).
    :param package: the plugin package whose ``templates/`` folder holds ``template``.
    :param figures: chart name -> ``plotly.graph_objects.Figure``; a template places one
        with ``{{ chart("name") }}``. With figures, plotly.js is inlined once.
    :param context: the template's other variables.
    """
    from markupsafe import Markup

    from .charts import embed

    figures = dict(figures or {})
    used: list[str] = []

    def chart(name: str, *, label: str = "", height: int | None = None) -> Markup:
        if name not in figures:
            raise KeyError(f"template {template} places chart '{name}', which the page does not define")
        used.append(name)
        style = f' style="height:{int(height)}px"' if height else ""
        return Markup('<div class="plot" data-figure="{}" role="img" aria-label="{}"{}></div>').format(
            name, label or name, Markup(style))

    scripts = Markup(embed(figures)) if figures else Markup("")
    page = environment(package).get_template(template).render(title=title, chart=chart, chart_scripts=scripts,
                                                              **context)
    missing = sorted(set(figures) - set(used))
    if missing:
        raise KeyError(f"template {template} does not place the charts {missing}")
    return page


def write_page(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
