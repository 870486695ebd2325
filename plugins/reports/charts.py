"""Charts: Plotly figures built with ``plotly.graph_objects`` (validated as they are built)
and their embedding in a page.

A page carries every figure's JSON once in a ``<script type="application/json">`` block,
plotly.js itself (taken from the installed ``plotly`` package, inlined once) and a short
script that draws each ``<div data-figure="NAME">``. The shared look (fonts, colours,
margins) is one Plotly template, sent once per page rather than once per figure. Nothing
is fetched: no CDN, no fonts, no MathJax.

The builders below cover the charts tether's pages draw; a plugin may pass any
``go.Figure`` of its own to :func:`tether.plugins.reports.render_page`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

REFERENCE = "#8ca7c9"
CURRENT = "#e3883d"
LABEL_CHARS = 24  # longer category names are shortened on the axis (the hover shows them whole)
COLORWAY = ["#3b6ea8", CURRENT, "#1a7f37", "#cf222e", "#8250df", "#9a6700", "#57606a"]

# Draws every figure; marks <body data-rendered="true"> once all are drawn ("error" if one fails).
BOOTSTRAP = """(function(){
"use strict";
var spec=JSON.parse(document.getElementById("tether-figures").textContent);
var config={displaylogo:false,displayModeBar:"hover",responsive:true};
var jobs=[];
document.querySelectorAll("div[data-figure]").forEach(function(div){
  var fig=spec.figures[div.getAttribute("data-figure")];
  var layout=Object.assign({template:spec.template},fig.layout);
  jobs.push(Plotly.newPlot(div,fig.data,layout,config));
});
Promise.all(jobs).then(function(){document.body.setAttribute("data-rendered","true");},
  function(err){document.body.setAttribute("data-rendered","error");console.error(err);});
})();"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js as shipped inside the installed ``plotly`` Python package."""
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    if "</script" in script.lower():  # would end the inline <script> element early
        raise RuntimeError("the installed plotly.js cannot be inlined: it contains '</script'")
    return script


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    import plotly.graph_objects as go
    import plotly.io as pio

    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.update(
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#222"},
        margin={"l": 56, "r": 16, "t": 36, "b": 44}, colorway=COLORWAY, title={"font": {"size": 14}, "x": 0},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        hoverlabel={"namelength": -1})
    return template.to_plotly_json()


def embed(figures: Mapping[str, Any]) -> str:
    """The scripts that draw ``figures`` (name -> ``go.Figure``): plotly.js, the figures'
    JSON and the drawing script. JSON text is HTML-safe (``<``, ``>``, ``/`` escaped)."""
    from plotly.io.json import to_json_plotly

    payload = {"template": _template(), "figures": {}}
    for name, figure in figures.items():
        data = figure.to_plotly_json()
        data["layout"].pop("template", None)
        payload["figures"][name] = {"data": data["data"], "layout": data["layout"]}
    text = to_json_plotly(payload)
    if "</" in text or "<!--" in text:  # to_json_plotly escapes them; never embed if that changes
        raise RuntimeError("figure JSON is not safe to embed in a <script> element")
    return (f"<script>{plotly_js()}</script>\n"
            f'<script type="application/json" id="tether-figures">{text}</script>\n'
            f"<script>{BOOTSTRAP}</script>")


def text(value: Any) -> str:
    """A user-given string as Plotly text: Plotly reads ``<b>``, ``<a href>``... in labels,
    so ``&``, ``<`` and ``>`` are written as entities and shown literally."""
    import html

    return html.escape(str(value), quote=False)


def _axis_values(values: Sequence[Any]) -> list[Any]:
    """Numbers stay numbers (a numeric axis); anything else becomes escaped text."""
    import numbers

    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return [text(v) for v in values]


def _figure(traces: Sequence[Any], *, title: str = "", x: str = "", y: str = "", height: int = 320, **layout):
    import plotly.graph_objects as go

    figure = go.Figure(data=list(traces), layout={"template": {}})  # the page's template applies
    figure.update_layout(title={"text": text(title)} if title else None, height=height, xaxis_title=x,
                         yaxis_title=y, **layout)
    return figure


def bars(labels: Sequence[Any], series: Mapping[str, Sequence[float]], *, title: str = "", x: str = "",
         y: str = "", colors: Mapping[str, str] | None = None, height: int = 320, **layout):
    """Grouped bars: one trace per entry of ``series`` over the same ``labels`` (numbers give
    a numeric axis, anything else categories)."""
    import plotly.graph_objects as go

    colors = colors or {}
    xs = _axis_values(labels)
    traces = [go.Bar(x=xs, y=list(values), name=text(name),
                     marker={"color": colors[name]} if name in colors else None)
              for name, values in series.items()]
    raw = [str(v) for v in labels]
    if any(isinstance(v, str) for v in xs) and any(len(r) > LABEL_CHARS for r in raw):  # long categories
        short = [text(r if len(r) <= LABEL_CHARS else r[:LABEL_CHARS - 1] + "\u2026") for r in raw]
        layout["xaxis"] = {"tickmode": "array", "tickvals": xs, "ticktext": short, **layout.get("xaxis", {})}
    return _figure(traces, title=title, x=x, y=y, height=height, barmode="group", **layout)


def lines(series: Mapping[str, tuple[Sequence[Any], Sequence[float]]], *, title: str = "", x: str = "",
          y: str = "", diagonal: bool = False, markers: bool = False, height: int = 320, **layout):
    """Lines: ``series`` maps a name to ``(xs, ys)``; ``diagonal`` adds the dashed y = x line
    of ROC and calibration plots (on the unit square)."""
    import plotly.graph_objects as go

    mode = "lines+markers" if markers else "lines"
    traces = [go.Scatter(x=list(xs), y=list(ys), name=text(name), mode=mode) for name, (xs, ys) in series.items()]
    if diagonal:
        traces.append(go.Scatter(x=[0, 1], y=[0, 1], name="chance", mode="lines", hoverinfo="skip",
                                 line={"dash": "dash", "color": "#999", "width": 1}))
        layout = {"xaxis_range": [0, 1], "yaxis_range": [0, 1.02], **layout}
    return _figure(traces, title=title, x=x, y=y, height=height, **{"showlegend": True, **layout})


def heatmap(matrix: Sequence[Sequence[float]], *, x: Sequence[Any], y: Sequence[Any], title: str = "",
            x_title: str = "", y_title: str = "", height: int = 360, **layout):
    """An annotated heatmap (each cell shows its value), first row at the top."""
    import plotly.graph_objects as go

    xs, ys = [text(v) for v in x], [text(v) for v in y]
    trace = go.Heatmap(z=[list(row) for row in matrix], x=xs, y=ys, colorscale="Blues", texttemplate="%{z}",
                       hovertemplate=f"{y_title or 'y'}=%{{y}}<br>{x_title or 'x'}=%{{x}}<br>%{{z}}<extra></extra>")
    return _figure([trace], title=title, x=x_title, y=y_title, height=height,
                   yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"}, **layout)


def histogram(values: Sequence[float], *, title: str = "", x: str = "", bins: int = 40, height: int = 300,
              **layout):
    """A histogram of ``values`` (``bins`` bins at most)."""
    import plotly.graph_objects as go

    trace = go.Histogram(x=list(values), nbinsx=bins, name=x or "values")
    return _figure([trace], title=title, x=x, y="rows", height=height, showlegend=False, **layout)


def interval_dots(labels: Sequence[str], values: Sequence[float], intervals: Sequence[tuple[float, float] | None],
                  *, title: str = "", x: str = "", reference: float | None = None, height: int | None = None,
                  **layout):
    """One dot per label with its confidence interval as a horizontal error bar; an optional
    dotted reference line (e.g. the overall metric)."""
    import plotly.graph_objects as go

    plus = [None if iv is None else iv[1] - v for v, iv in zip(values, intervals)]
    minus = [None if iv is None else v - iv[0] for v, iv in zip(values, intervals)]
    names = [text(v) for v in labels]
    traces = [go.Scatter(x=list(values), y=names, mode="markers", name=x or "value",
                         error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus})]
    if reference is not None and names:  # a trace, not a shape, so the axis range includes it
        traces.append(go.Scatter(x=[reference, reference], y=[names[0], names[-1]], mode="lines", name="all rows",
                                 hoverinfo="x+name", line={"dash": "dot", "color": "#999", "width": 1}))
    return _figure(traces, title=title, x=x, height=height or 140 + 28 * len(labels), showlegend=False,
                   yaxis={"autorange": "reversed", "type": "category"}, **layout)
