"""The catalog: every integration, the module whose import triggers it, what it carries.

One row per client library, and the one place each of these facts is written: the
engine watches ``trigger``, ``verify``, ``doctor`` and the README's supported-versions
table read ``distributions``, the launcher exports ``exports`` (variables the client
reads itself, so that non-Python children such as ``psql`` are tagged too) only while
every integration reading that variable is enabled. What to patch and the supported
range live in the integration's own module (``ua_autotag.integrations.<name>``),
imported only when ``trigger`` is imported.

SQLAlchemy tags through the driver integrations (one tag and one span per
connection); its row only pins engines and pools to the product that created them.
Imported by ``instrument()``: no ``typing`` here, nothing but tuples.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

__all__ = ["CATALOG", "RUNTIMES", "SDK_MODULES", "CatalogEntry", "module_for", "readers"]


class CatalogEntry:
    """A catalog row; see the module docstring for what each field feeds."""

    __slots__ = ("carrier", "distributions", "exports", "module", "trigger", "watch")

    def __init__(
        self,
        trigger: str,
        carrier: Optional[str],
        distributions: Tuple[str, ...] = (),
        exports: Tuple[str, ...] = (),
        module: Optional[str] = None,
        watch: Tuple[str, ...] = (),
    ) -> None:
        self.trigger = trigger  # module whose import applies the integration
        self.carrier = carrier  # key of ua_autotag.merge.CARRIERS (None: tags no carrier)
        self.distributions = distributions  # PyPI names of the client, first preferred
        self.exports = exports  # environment variables the client itself reads
        self.module = module  # defaults to ua_autotag.integrations.<name>
        #: modules of other distributions whose import applies the integration's
        #: patches marked ``when=`` (pools); never imported by us
        self.watch = watch

    def __repr__(self) -> str:
        return f"CatalogEntry({self.trigger!r}, {self.carrier!r})"


def module_for(name: str) -> str:
    """The module holding integration ``name``'s ``INTEGRATION`` spec."""
    return CATALOG[name].module or f"ua_autotag.integrations.{name}"


CATALOG: Dict[str, CatalogEntry] = {
    "psycopg": CatalogEntry(
        "psycopg", "application_name", ("psycopg",), ("PGAPPNAME",), watch=("psycopg_pool",)
    ),
    "psycopg2": CatalogEntry(
        "psycopg2",
        "application_name",
        ("psycopg2", "psycopg2-binary"),
        ("PGAPPNAME",),
        watch=("psycopg2.pool",),
    ),
    "asyncpg": CatalogEntry("asyncpg", "application_name", ("asyncpg",)),
    "pg8000": CatalogEntry("pg8000", "application_name", ("pg8000",)),
    "connectorx": CatalogEntry("connectorx", "application_name", ("connectorx",)),
    "adbc_postgresql": CatalogEntry(
        "adbc_driver_postgresql",
        "application_name",
        ("adbc-driver-postgresql",),
        ("PGAPPNAME",),
    ),
    "sqlalchemy": CatalogEntry("sqlalchemy", None, ("SQLAlchemy",)),
    "databricks_sdk": CatalogEntry("databricks.sdk", "http-user-agent", ("databricks-sdk",)),
    "databricks_sql": CatalogEntry(
        "databricks.sql", "user_agent_entry", ("databricks-sql-connector",)
    ),
    "pyodbc": CatalogEntry("pyodbc", "odbc", ("pyodbc",)),
    "jaydebeapi": CatalogEntry("jaydebeapi", "odbc", ("JayDeBeApi", "jaydebeapi")),
    "requests": CatalogEntry("requests", "http-user-agent", ("requests",)),
    "httpx": CatalogEntry("httpx", "http-user-agent", ("httpx",)),
    "urllib3": CatalogEntry("urllib3", "http-user-agent", ("urllib3",)),
    "aiohttp": CatalogEntry("aiohttp", "http-user-agent", ("aiohttp",)),
    "spark_connect": CatalogEntry(
        "pyspark.sql.connect.client.core",
        "spark_connect",
        ("pyspark-client", "pyspark-connect", "pyspark"),
        ("SPARK_CONNECT_USER_AGENT",),
    ),
    "databricks_connect": CatalogEntry(
        "databricks.connect",
        "spark_connect",
        ("databricks-connect",),
        ("SPARK_CONNECT_USER_AGENT",),
    ),
    # no carrier of its own: the functions handed to Spark carry the decision to the
    # executors, where the other integrations tag (ua_autotag.executor)
    "pyspark": CatalogEntry(
        "pyspark",
        None,
        ("pyspark", "pyspark-client", "pyspark-connect", "databricks-connect"),
        watch=(
            "pyspark.sql.connect.udf",
            "pyspark.sql.connect.plan",
            "pyspark.sql.connect.streaming.readwriter",
        ),
    ),
}

#: Non-Python runtimes the launcher hooks (``ua_autotag.runtimes``); names share
#: ``disabled`` / ``--disable`` with the integrations.
RUNTIMES: Tuple[str, ...] = ("node", "java")

#: where an OpenTelemetry SDK's providers come from: importing one of these wraps the
#: integrations' span-only layers (``Patch.spans_only``), which are left out before
SDK_MODULES: Tuple[str, ...] = ("opentelemetry.sdk.trace", "opentelemetry.sdk.metrics")


def readers(variable: str) -> Tuple[str, ...]:
    """The integrations whose clients read ``variable`` themselves (``PGAPPNAME``...)."""
    return tuple(name for name, entry in CATALOG.items() if variable in entry.exports)
