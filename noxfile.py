"""Sessions: tests (the CI command), lint, typecheck, bench, matrix, dbconnect."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = False
# uv makes the virtualenvs and installs into them when it is installed next to nox (the
# README's command installs it), else virtualenv + pip
nox.options.default_venv_backend = "uv|virtualenv"
# byte-compiled at install, as pip does: the tests start many fresh interpreters, and with
# PYTHONDONTWRITEBYTECODE set each would otherwise compile every module it imports
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")

PYTHON = "3.11"
#: pytest on every core (pytest-xdist); ``-- -n 0`` after a session name runs serially
PARALLEL = ("-n", "auto")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full suite against real local peers (PostgreSQL, HTTP, gRPC, unixODBC)."""
    session.run("bash", "scripts/system-deps.sh", external=True)
    session.install("-e", ".[all,test]")
    _install_unitycatalog_client(session)
    session.run("pytest", *PARALLEL, *session.posargs)


def _install_unitycatalog_client(session: nox.Session) -> None:
    """The Unity Catalog Python client for the aiohttp tests, without its dependencies:
    it pins each of them to an exact ceiling (``urllib3<=2.6.3``,
    ``typing-extensions<=4.15.0``...), which would downgrade what the other tests run
    against; the test extra lists what it imports."""
    session.install("--no-deps", "unitycatalog-client>=0.3")


def _show_versions(session: nox.Session) -> None:
    """Print what is installed, name==version (a uv-made virtualenv has no pip)."""
    session.run(
        "python", "-c",
        "import importlib.metadata as m; print('\\n'.join(sorted({f\"{d.metadata['Name']}=="
        "{d.version}\" for d in m.distributions()}, key=str.lower)))",
        silent=False,
    )  # fmt: skip


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    # the clients' own type information is what the integrations are checked against
    session.install("-e", ".[all]", "mypy", "opentelemetry-instrumentation", "types-requests")
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


#: The version matrix: the oldest and the newest supported release of each client, as
#: (id, Python, pip requirements, test files under tests/integrations). The oldest is the
#: floor of the integration's ``supported=`` range, or the first release in it that works
#: on Python 3.11 (plus the floor itself on the oldest Python it installs on); the newest
#: is the latest release inside the range when this was written: bump those pins when a
#: client releases. Companions are pinned to what the client needs.
def _interpreter(version: str) -> str:
    """``version``, or a pyenv-installed interpreter of it (pyenv's shims answer only for
    the selected versions, so nox would not find an unselected one)."""
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    return str(found[-1]) if found else version


MATRIX = [
    ("asyncpg-0.29.0", PYTHON, ["asyncpg==0.29.0"], ["test_asyncpg.py"]),
    ("asyncpg-0.32.0", PYTHON, ["asyncpg==0.32.0"], ["test_asyncpg.py"]),
    # psycopg 3.1.0 predates psycopg-binary (3.1.4): pure Python over the system libpq
    ("psycopg-3.1.0", PYTHON, ["psycopg==3.1", "psycopg-pool==3.1"], ["test_psycopg.py"]),
    ("psycopg-3.3.9", PYTHON, ["psycopg[binary]==3.3.9", "psycopg-pool==3.3.3"],
     ["test_psycopg.py"]),
    # aiohttp 3.8 is the floor of unitycatalog-client too; 3.12 brought client middlewares
    ("aiohttp-3.8.6", PYTHON, ["aiohttp==3.8.6"], ["test_aiohttp.py"]),
    ("aiohttp-3.14.5", PYTHON, ["aiohttp==3.14.5"], ["test_aiohttp.py"]),
    ("pg8000-1.29.0", PYTHON, ["pg8000==1.29.0"], ["test_pg8000.py"]),
    ("pg8000-1.31.6", PYTHON, ["pg8000==1.31.6"], ["test_pg8000.py"]),
    # connectorx 0.3.2 (the floor) has no Python 3.11 wheel: 0.3.3 is the first that installs
    ("connectorx-0.3.3", PYTHON, ["connectorx==0.3.3", "pyarrow"], ["test_connectorx.py"]),
    ("connectorx-0.4.6", PYTHON, ["connectorx==0.4.6", "pyarrow"], ["test_connectorx.py"]),
    ("adbc-driver-postgresql-0.8.0", PYTHON, ["adbc-driver-postgresql[dbapi]==0.8.0"],
     ["test_adbc_postgresql.py"]),
    ("adbc-driver-postgresql-1.13.0", PYTHON, ["adbc-driver-postgresql[dbapi]==1.13.0"],
     ["test_adbc_postgresql.py"]),
    # psycopg2 < 2.9.2 does not import on Python 3.11 (2.8.0-2.8.5 do not even compile on
    # 3.10+): the 2.8 floor runs on Python 3.9, 2.9.2 (built from source: no 3.11 wheel
    # before 2.9.5) is the floor on 3.11
    ("psycopg2-2.8-py3.9", _interpreter("3.9"), ["psycopg2==2.8"], ["test_psycopg2.py"]),
    ("psycopg2-2.9.2", PYTHON, ["psycopg2==2.9.2"], ["test_psycopg2.py"]),
    ("psycopg2-binary-2.9.13", PYTHON, ["psycopg2-binary==2.9.13"], ["test_psycopg2.py"]),
    # SQLAlchemy over the PostgreSQL drivers and the databricks dialect (databricks-sqlalchemy
    # 1.x is the dialect for SQLAlchemy 1.4; SQLAlchemy 1.4 has no psycopg 3 dialect)
    (
        "sqlalchemy-1.4.0", PYTHON,
        ["sqlalchemy==1.4.0", "databricks-sqlalchemy==1.0.5", "databricks-sql-connector==4.9.0",
         "psycopg[binary]", "psycopg-pool", "psycopg2-binary", "asyncpg"],
        ["test_sqlalchemy_postgres.py", "test_databricks_sqlalchemy.py"],
    ),
    (
        "sqlalchemy-2.1.9", PYTHON,
        ["sqlalchemy==2.1.9", "databricks-sqlalchemy==2.0.10", "databricks-sql-connector==4.9.0",
         "psycopg[binary]", "psycopg-pool", "psycopg2-binary", "asyncpg"],
        ["test_sqlalchemy_postgres.py", "test_databricks_sqlalchemy.py"],
    ),
    # 4.0.2: 4.0.0 reads only _user_agent_entry (there is no 4.0.1); 2.0.9 is the last
    # databricks-sqlalchemy that accepts a 4.0 connector
    (
        "databricks-sql-connector-4.0.2", PYTHON,
        ["databricks-sql-connector==4.0.2", "databricks-sqlalchemy==2.0.9"],
        ["test_databricks_sql.py", "test_databricks_sqlalchemy.py"],
    ),
    (
        "databricks-sql-connector-4.9.0", PYTHON,
        ["databricks-sql-connector==4.9.0", "databricks-sqlalchemy==2.0.10"],
        ["test_databricks_sql.py", "test_databricks_sqlalchemy.py"],
    ),
    # the kernel backend (use_kernel=True): its own HTTP stack, and the 1024-byte cut of
    # the User-Agent it sends, on the wire; it pins pyarrow < 24, hence its own entry
    (
        "databricks-sql-kernel-1.3.0", PYTHON,
        ["databricks-sql-connector==4.9.0", "databricks-sql-kernel==1.3.0", "pyarrow>=23.0.1,<24"],
        ["test_databricks_sql.py"],
    ),
    # 0.34: _BaseClient, where the integration sets the header, came in 0.34; grpcio and
    # cryptography for the gRPC transport test (its TLS peer)
    ("databricks-sdk-0.34.0", PYTHON, ["databricks-sdk==0.34.0", "grpcio", "cryptography"],
     ["test_databricks_sdk.py"]),
    ("databricks-sdk-0.162.0", PYTHON, ["databricks-sdk==0.162.0", "grpcio", "cryptography"],
     ["test_databricks_sdk.py"]),
    # Spark Connect from pyspark-client (4.0+); pyspark 3.5 runs in the dbconnect session
    # (Databricks Connect's bundled copy) only: the plain 3.5 protocol lacks fields the
    # test peer answers with, and the tests build 4.0-only channel builders
    ("pyspark-client-4.0.0", PYTHON, ["pyspark-client==4.0.0"], ["test_spark_connect.py"]),
    ("pyspark-client-4.2.0", PYTHON, ["pyspark-client==4.2.0"], ["test_spark_connect.py"]),
    # Databricks Connect: the newest release of each line that installs on Python 3.11
    # (17.x needs 3.12); each ships its own pyspark, and needs numpy < 2 (hence the pins).
    # 16.1 also runs in the dbconnect session, which CI runs
    *(
        (f"databricks-connect-{v}", PYTHON, [f"databricks-connect=={v}", "pyarrow<18", "pandas<3"],
         ["test_databricks_connect.py", "test_spark_connect.py"])
        for v in ("15.4.26", "16.0.4", "16.1.7")
    ),
]


@nox.session
@nox.parametrize(
    "python, requirements, test_files",
    [(python, reqs, files) for _, python, reqs, files in MATRIX],
    ids=[name for name, _, _, _ in MATRIX],
)
def matrix(session: nox.Session, requirements: list[str], test_files: list[str]) -> None:
    """Integration tests against the oldest and newest supported release of each client.

    One virtualenv per entry (reused between runs): ``nox -s matrix`` runs them all,
    ``nox -s "matrix(asyncpg-0.29.0)"`` one; options after ``--`` go to pytest.
    """
    session.run("bash", "scripts/system-deps.sh", external=True)
    session.install("-e", ".[test]", *requirements)
    if "test_aiohttp.py" in test_files:
        _install_unitycatalog_client(session)
    _show_versions(session)
    session.run("pytest", *(f"tests/integrations/{f}" for f in test_files), *session.posargs)


@nox.session(python=PYTHON)
def dbconnect(session: nox.Session) -> None:
    """Databricks Connect in its own virtualenv (it ships its own ``pyspark`` and cannot
    share one with the ``tests`` session's ``pyspark-client``).

    databricks-connect 16.1 is the newest release installable on Python 3.11; it needs
    numpy < 2, hence the pyarrow / pandas pins. The Spark Connect tests run here too,
    against the pyspark (3.5) it bundles, and so do the ``pyspark`` hand-over tests
    (functions carried with their value; psycopg for the executor's connection). Needs the
    ``openssl`` command (the gRPC peer's throw-away TLS certificate). Options after ``--``
    go to pytest.
    """
    session.install(
        "-e", ".[test]", "databricks-connect==16.1.*", "pyarrow<18", "pandas<3",
        "psycopg[binary]",
    )
    _show_versions(session)
    session.run(
        "pytest",
        *PARALLEL,
        "tests/integrations/test_databricks_connect.py",
        "tests/integrations/test_spark_connect.py",
        "tests/integrations/test_pyspark_handover.py",
        "tests/integrations/test_pyspark_executor.py",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def sparkworkers(session: nox.Session) -> None:
    """Spark's executors, for real: a standalone master and worker and a Spark Connect
    server, each started from the full pyspark package with a clean environment, and
    driver programs (classic and Spark Connect) whose functions open connections on the
    executors (tests/spark_workers/test_cluster.py); local mode as the quick check.

    pyspark 4.0 bundles the Spark Connect server and runs on Java 17 (the JDK
    system-deps.sh installs) and Python 3.11; its ``connect`` extra brings pandas, pyarrow
    and grpcio (pandas UDFs, the Connect client). It cannot share a virtualenv with the
    ``tests`` session's ``pyspark-client``. ``UA_AUTOTAG_SPARK_WORKERS=1`` turns the tests'
    skip (no Spark or Java) into a failure. Options after ``--`` go to pytest.
    """
    session.run("bash", "scripts/system-deps.sh", external=True)
    session.install("-e", ".[test]", "psycopg[binary]", "pyspark[connect]==4.0.1")
    session.run(
        "pytest", "tests/spark_workers", *session.posargs,
        env={"UA_AUTOTAG_SPARK_WORKERS": "1"},
    )
