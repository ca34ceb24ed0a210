"""One CLIENT span per real connection: names, attributes, parents, errors, metrics, secrets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ua_autotag
from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"
SECRET = "s3cr3t-Pa55word"


def _ours(spans: Any) -> list[Any]:
    return [s for s in spans.get_finished_spans() if "ua_autotag.integration" in s.attributes]


def _all_text(span: Any) -> str:
    parts = [span.name, str(span.status.description)]
    parts += [f"{k}={v}" for k, v in span.attributes.items()]
    for event in span.events:
        parts += [event.name] + [f"{k}={v}" for k, v in event.attributes.items()]
    return "\n".join(parts)


def test_one_client_span_per_connection(pg_dsn: str, spans: Any) -> None:
    import psycopg
    from opentelemetry.trace import SpanKind

    ua_autotag.instrument(UA)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("select 1")
    (span,) = _ours(spans)
    assert span.kind is SpanKind.CLIENT
    assert span.name == f"connect {pg.HOST}:{pg.PORT}"
    attrs = span.attributes
    assert attrs["db.system.name"] == "postgresql"
    assert attrs["server.address"] == pg.HOST and attrs["server.port"] == pg.PORT
    assert attrs["user_agent.original"] == UA
    assert attrs["ua_autotag.integration"] == "psycopg"
    assert attrs["ua_autotag.mode"] == "append"
    assert attrs["ua_autotag.client.version"] == psycopg.__version__


def test_name_and_attributes_are_given_at_span_start(pg_dsn: str, spans: Any) -> None:
    """One layer knows the target and the value before it connects: the SDK gets them at
    start (no rename, no second attribute call), and the span still covers the call."""
    import time

    import psycopg2
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    at_start: list[tuple[str, dict[str, Any]]] = []
    listening = [True]

    class AtStart(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if listening[0]:
                at_start.append((span.name, dict(span.attributes)))

    trace.get_tracer_provider().add_span_processor(AtStart())  # type: ignore[attr-defined]
    try:
        ua_autotag.instrument(UA)
        before = time.time_ns()
        psycopg2.connect(pg_dsn).close()
        after = time.time_ns()
    finally:
        listening[0] = False
    ours = [(name, attrs) for name, attrs in at_start if "ua_autotag.integration" in attrs]
    assert len(ours) == 1
    name, attrs = ours[0]
    assert name == f"connect {pg.HOST}:{pg.PORT}"
    assert attrs["server.address"] == pg.HOST and attrs["server.port"] == pg.PORT
    assert attrs["user_agent.original"] == UA
    (span,) = _ours(spans)
    assert before <= span.start_time <= span.end_time <= after
    assert span.attributes["user_agent.original"] == UA


def test_connection_inside_a_user_span_is_its_child(pg_dsn: str, spans: Any) -> None:
    import psycopg
    from opentelemetry import trace

    ua_autotag.instrument(UA)
    with trace.get_tracer("app").start_as_current_span("request") as parent:
        psycopg.connect(pg_dsn).close()
    (span,) = _ours(spans)
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id


def test_async_connect_gets_a_span(pg_dsn: str, spans: Any) -> None:
    import psycopg

    ua_autotag.instrument(UA)

    async def main() -> None:
        conn = await psycopg.AsyncConnection.connect(pg_dsn)
        await conn.close()

    asyncio.run(main())
    (span,) = _ours(spans)
    assert span.attributes["user_agent.original"] == UA


@pytest.mark.parametrize(
    "shape",
    ["conninfo", "uri", "kwargs"],
)
def test_failed_connect_records_error_without_secrets(spans: Any, shape: str) -> None:
    import psycopg

    ua_autotag.instrument(UA)
    bad_db = "no_such_database_xyz"
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = {}
    if shape == "conninfo":
        args = (f"host={pg.HOST} port={pg.PORT} user={pg.USER} dbname={bad_db} password={SECRET}",)
    elif shape == "uri":
        args = (f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{bad_db}",)
    else:
        args = ()
        kwargs = dict(host=pg.HOST, port=pg.PORT, user=pg.USER, dbname=bad_db, password=SECRET)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(*args, **kwargs)
    assert bad_db in str(info.value)  # the driver's own exception, unchanged
    (span,) = _ours(spans)
    from opentelemetry.trace import StatusCode

    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == type(info.value).__qualname__
    assert SECRET not in _all_text(span)


def test_connection_counter_by_integration_and_outcome(pg_dsn: str, spans: Any) -> None:
    import psycopg

    ua_autotag.instrument(UA)
    psycopg.connect(pg_dsn).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_dsn + " dbname=no_such_database_xyz")
    data = spans.metric_reader.get_metrics_data()
    points = [
        (dict(p.attributes), p.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "ua_autotag.connections"
        for p in m.data.data_points
    ]
    by_outcome = {
        attrs["outcome"]: value
        for attrs, value in points
        if attrs["ua_autotag.integration"] == "psycopg"
    }
    assert by_outcome.get("ok", 0) >= 1 and by_outcome.get("error", 0) >= 1


def test_spans_off_means_no_telemetry(pg_dsn: str, spans: Any) -> None:
    import psycopg

    ua_autotag.instrument(UA, spans=False)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(pg.APPLICATION_NAME_SQL).fetchone()[0] == UA
    assert _ours(spans) == []


def test_no_sdk_means_no_span_work_and_a_later_sdk_is_picked_up(pg_dsn: str, tmp_path: Any) -> None:
    """Spans on but no SDK: nothing is built; an SDK configured afterwards gets spans."""
    import os
    import subprocess
    import sys

    script = tmp_path / "late_sdk.py"
    script.write_text(
        "import sys, psycopg, ua_autotag\n"
        "from ua_autotag import telemetry\n"
        f"ua_autotag.instrument({UA!r})\n"
        f"psycopg.connect({pg.DSN!r}).close()\n"
        # no span was attempted (the API was never even loaded) and the span-only
        # layers are not wrapped: psycopg.connect is psycopg's own bound method
        "before = 'opentelemetry.trace' in sys.modules or hasattr(psycopg.connect, '__wrapped__')\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "exporter = InMemorySpanExporter(); provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        f"psycopg.connect({pg.DSN!r}).close()\n"
        "print(before, telemetry.sdk_configured(), len(exporter.get_finished_spans()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UA_AUTOTAG_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "1"]
