"""Shared fixtures: a clean ua_autotag state around every test, the OTel in-memory SDK."""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

import ua_autotag

UA = "AcmePartner_DatEngProduct/3.5"

if os.environ.get("PYTEST_XDIST_WORKER") and not hasattr(sys.modules["__main__"], "__file__"):
    # An xdist worker runs as ``python -c``: its ``__main__`` has neither ``__spec__`` nor
    # ``__file__``, which ``pyspark.sql.connect`` takes for its own doctest run (it then
    # exits the interpreter at import). A file name is what a pytest process has too.
    sys.modules["__main__"].__file__ = sys.argv[0] or "pytest-xdist-worker"


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test leaks instrumentation, env configuration or scoped values into another."""
    for var in list(os.environ):
        if var.startswith("UA_AUTOTAG_"):
            monkeypatch.delenv(var)
    ua_autotag.uninstrument()
    yield
    ua_autotag.uninstrument()


@pytest.fixture(scope="session")
def span_exporter():  # type: ignore[no-untyped-def]
    """The process-wide in-memory span exporter (OTel allows one provider per process)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    exporter.metric_reader = reader  # type: ignore[attr-defined]
    return exporter


@pytest.fixture
def spans(span_exporter):  # type: ignore[no-untyped-def]
    """The in-memory exporter, emptied before the test."""
    span_exporter.clear()
    return span_exporter


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The local PostgreSQL libpq DSN; fails (not skips) when the server is down."""
    from tests import pg

    if not pg.server_reachable():
        pytest.fail(
            f"PostgreSQL is not reachable at {pg.HOST}:{pg.PORT}; start it with "
            "scripts/system-deps.sh (tests that need it fail rather than skip)"
        )
    return pg.DSN


@pytest.fixture
def http_peer() -> Iterator[object]:
    """A started :class:`ua_autotag.verify.http_peer.HeaderRecorder`."""
    from ua_autotag.verify.http_peer import HeaderRecorder

    with HeaderRecorder() as peer:
        yield peer
