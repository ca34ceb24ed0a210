"""The catalog: every integration, the module whose import triggers it, its carrier.

One row per client library. The integration's own module
(``ua_autotag.integrations.<name>``) is imported only when ``trigger`` is imported,
so importing ua_autotag costs nothing for clients an application never uses.
SQLAlchemy has no row of its own: every dialect reaches its driver's connect, which
is patched here (one tag and one span per connection, engines old and new).
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional


class CatalogEntry(NamedTuple):
    trigger: str  # module whose import applies the integration
    carrier: str  # key of ua_autotag.useragent.CARRIERS
    module: Optional[str] = None  # defaults to ua_autotag.integrations.<name>


def module_for(name: str) -> str:
    """The module holding integration ``name``'s ``INTEGRATION`` spec."""
    return CATALOG[name].module or f"{__name__}.{name}"


CATALOG: Dict[str, CatalogEntry] = {
    "psycopg": CatalogEntry("psycopg", "application_name"),
    "psycopg2": CatalogEntry("psycopg2", "application_name"),
    "asyncpg": CatalogEntry("asyncpg", "application_name"),
    "databricks_sdk": CatalogEntry("databricks.sdk", "http-user-agent"),
    "databricks_sql": CatalogEntry("databricks.sql", "user_agent_entry"),
    "pyodbc": CatalogEntry("pyodbc", "odbc"),
    "jaydebeapi": CatalogEntry("jaydebeapi", "odbc"),
    "requests": CatalogEntry("requests", "http-user-agent"),
    "httpx": CatalogEntry("httpx", "http-user-agent"),
    "urllib3": CatalogEntry("urllib3", "http-user-agent"),
    "spark_connect": CatalogEntry("pyspark.sql.connect.client.core", "spark_connect"),
    "databricks_connect": CatalogEntry("databricks.connect", "spark_connect"),
}
