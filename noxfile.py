"""Sessions: tests (the CI command), lint, typecheck, bench, matrix, dbconnect."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = False

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full suite against real local peers (PostgreSQL, HTTP, gRPC, unixODBC)."""
    session.run("bash", "scripts/system-deps.sh", external=True)
    session.install("-e", ".[all,test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy", "opentelemetry-instrumentation")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Overhead benchmarks (benchmarks/README.md); not part of the test run.

    The anchors (OpenTelemetry's psycopg instrumentor and launcher, ddtrace) are
    installed here only, never in the test or runtime dependencies. Options after
    ``--`` go to benchmarks/run.py (``--quick`` for a smoke run, ``--only NAME``).
    """
    session.run("bash", "scripts/system-deps.sh", external=True)
    session.install(
        "-e",
        ".[all]",
        "pyperf",
        "opentelemetry-sdk",
        "opentelemetry-distro",
        "opentelemetry-instrumentation-psycopg",
        "ddtrace",
    )
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON)
def dbconnect(session: nox.Session) -> None:
    """Databricks Connect in its own virtualenv (it ships its own ``pyspark`` and cannot
    share one with the ``tests`` session's ``pyspark-client``).

    databricks-connect 16.1 is the newest release installable on Python 3.11; it needs
    numpy < 2, hence the pyarrow / pandas pins. The Spark Connect tests run here too,
    against the pyspark (3.5) it bundles. Needs the ``openssl`` command (the gRPC peer's
    throw-away TLS certificate). Options after ``--`` go to pytest.
    """
    session.install("-e", ".[test]", "databricks-connect==16.1.*", "pyarrow<18", "pandas<3")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run(
        "pytest",
        "tests/integrations/test_databricks_connect.py",
        "tests/integrations/test_spark_connect.py",
        *session.posargs,
    )
