"""LLM and RAG traces: sinks, redactors, config records, signals and ``tether traces``.

Capture itself is :mod:`tether.tracing` (standard library only); this plugin supplies
what the captured spans go through and where they end up. Modules, by concern:

* :mod:`.redaction` - redactors (backend kind ``redactor``): ``pii``, ``secrets``, ``regex``;
* :mod:`.jsonl` - the ``jsonl`` sink (backend kind ``trace_sink``) and its reader;
* :mod:`.assemble` - the ``trace`` record and its lineage links; :mod:`.spans_table` - the
  ``trace_spans`` table (a migration); :mod:`.store_sink` - the ``store`` sink (the default);
* :mod:`.configs` - versioned config records: ``prompt_template``, ``retrieval_config``,
  ``tool_definition``, ``guardrail_config``, ``question_set``;
* :mod:`.setup` - :func:`start_tracing` from a configuration;
* :mod:`.read` - traces back from the store or JSONL files;
* :mod:`.signals` - one row of monitoring signals per request, and the ``traces`` window
  (backend kind ``window``); :mod:`.rag_eval` - retrieval and answer evaluation;
* :mod:`.commands` - ``tether traces ls|show|export``.
"""

from __future__ import annotations

from tether import hookimpl


def start_tracing(*args, **kwargs):
    """Install the process-wide tracer from a configuration (see :mod:`.setup`)."""
    from .setup import start_tracing as start

    return start(*args, **kwargs)


@hookimpl
def tether_add_backends(backends):
    from . import assemble, configs, spans_table  # noqa: F401 - assemble, configs: the record kinds
    from .jsonl import JsonlSink
    from .redaction import REDACTORS
    from .signals import TracesWindow
    from .store_sink import StoreSink

    spans_table.register()  # the trace_spans table, created by the SQL stores' migrations
    for cls in (StoreSink, JsonlSink, *REDACTORS, TracesWindow):
        backends.add(cls)


@hookimpl
def tether_add_commands(cli):
    from .commands import register

    register(cli)
