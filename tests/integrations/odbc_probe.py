"""Run pyodbc.connect calls in a fresh process (unixODBC reads ODBCSYSINI and its
trace settings once per process) and print what happened as JSON.

Usage: python odbc_probe.py '<json spec>' with spec keys ``calls`` (list of
``{"args": [...], "kwargs": {...}}``), ``instrument`` (kwargs for
``ua_autotag.instrument`` or null), ``import_first`` (import pyodbc before
instrumenting), ``spans`` (collect spans with the SDK's in-memory exporter).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List


def main() -> None:
    spec = json.loads(sys.argv[1])
    exporter = None
    if spec.get("spans"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

    import ua_autotag

    if spec.get("import_first"):
        import pyodbc

    if spec.get("instrument") is not None:
        ua_autotag.instrument(**spec["instrument"])
    import pyodbc

    results: List[Dict[str, Any]] = []
    for call in spec["calls"]:
        try:
            conn = pyodbc.connect(*call.get("args", []), **call.get("kwargs", {}))
            conn.close()
            results.append({"ok": True})
        except Exception as exc:
            results.append(
                {"ok": False, "type": type(exc).__name__, "args": [str(a) for a in exc.args]}
            )
    out: Dict[str, Any] = {
        "results": results,
        "status": ua_autotag.status()["pyodbc"].state,
    }
    if exporter is not None:
        out["spans"] = [
            {"name": s.name, "kind": str(s.kind), "attributes": dict(s.attributes or {}),
             "status": str(s.status.status_code)}
            for s in exporter.get_finished_spans()
        ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
