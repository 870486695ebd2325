"""OTLP export of traces through the OpenTelemetry SDK (extra ``rag``).

The ``otlp`` trace sink sends spans over OTLP/HTTP (protobuf) to any OpenTelemetry
collector or backend, with the OpenTelemetry GenAI semantic-convention attributes
(``gen_ai.*``) and the OpenInference span kinds (``openinference.span.kind``), so traces
open in any OTLP backend. ``tether traces export --format otlp-json`` writes the same
spans as an OTLP/JSON document.

Modules: ``convention`` maps a span dict to OpenTelemetry attributes (no imports beyond
the standard library); ``exporter`` builds SDK spans, the sink and the JSON encoding. This
module holds only the hook, so loading the plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .exporter import OtlpSink

    backends.add(OtlpSink)
