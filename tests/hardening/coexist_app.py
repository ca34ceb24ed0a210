"""Run in a fresh interpreter by test_coexistence.py: ua-autotag beside another patcher.

argv: <patcher> <order: ours-first|ours-last> <dsn>. Prints one JSON line:
application_name the server saw and span counts at three stages — both active,
the other side uninstrumented, ua-autotag uninstrumented.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List, Tuple

patcher, order, dsn = sys.argv[1:4]
UA = "AcmePartner_DatEngProduct/3.5"
SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
dd_spans: List[Any] = []


def other() -> Tuple[Callable[[], None], Callable[[], None]]:
    """(instrument, uninstrument) of the other patcher."""
    if patcher == "otel-psycopg":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        inst = PsycopgInstrumentor()
        return (lambda: inst.instrument(tracer_provider=provider)), inst.uninstrument
    if patcher == "otel-sqlalchemy":
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        sa = SQLAlchemyInstrumentor()
        # its declared range stops below the installed SQLAlchemy 2.1; the code still works
        return (
            lambda: sa.instrument(tracer_provider=provider, skip_dep_check=True)
        ), sa.uninstrument
    if patcher == "otel-dbapi":
        import psycopg
        from opentelemetry.instrumentation import dbapi

        def on() -> None:
            dbapi.wrap_connect(
                "dbapi-test", psycopg, "connect", "postgresql", tracer_provider=provider
            )

        return on, lambda: dbapi.unwrap_connect(psycopg, "connect")
    if patcher == "ddtrace":
        from ddtrace import patch
        from ddtrace.trace import TraceFilter, tracer

        class Keep(TraceFilter):  # type: ignore[misc]
            def process_trace(self, spans: Any) -> None:
                dd_spans.extend(spans)
                return None  # collected here, never sent to an agent

        tracer.configure(trace_processors=[Keep()])

        def unpatch() -> None:
            from ddtrace.contrib.internal.psycopg.patch import unpatch as dd_unpatch

            dd_unpatch()

        return (lambda: patch(psycopg=True)), unpatch
    raise SystemExit(f"unknown patcher {patcher}")


def one_connection() -> str:
    if patcher == "otel-sqlalchemy":
        import sqlalchemy
        from psycopg.conninfo import conninfo_to_dict

        p = conninfo_to_dict(dsn)
        url = f"postgresql+psycopg://{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(SQL).scalar())
    import psycopg

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(SQL)
        return str(cur.fetchone()[0])


def counts() -> dict:
    ours = [s for s in exporter.get_finished_spans() if "ua_autotag.integration" in s.attributes]
    theirs = [
        s for s in exporter.get_finished_spans() if "ua_autotag.integration" not in s.attributes
    ]
    result = {"ours": len(ours), "theirs": len(theirs) + len(dd_spans)}
    exporter.clear()
    dd_spans.clear()
    return result


import ua_autotag  # noqa: E402

other_on, other_off = other()
if order == "ours-first":
    ua_autotag.instrument(UA)
    other_on()
else:
    other_on()
    ua_autotag.instrument(UA)

stages = {}
stages["both"] = {"app": one_connection(), **counts()}
other_off()
stages["other_off"] = {"app": one_connection(), **counts()}
other_on()
ua_autotag.uninstrument()
stages["ours_off"] = {"app": one_connection(), **counts()}
print(json.dumps(stages))
