"""Carriers and their merge rules: where each client carries the value, how ours joins in.

One module per carrier family, each a set of pure functions (the caller's value, ours,
mode) -> what to send: :mod:`.tokens` (User-Agent style token lists), :mod:`.libpq`
(``application_name``), :mod:`.odbc` (ODBC / JDBC attributes), :mod:`.http` (REST
headers), :mod:`.spark` (the Spark Connect user part). This package's own module holds
only the carrier table, so that validating a value (``ua_autotag.value``) imports
nothing else.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Mapping, Optional

__all__ = [
    "APPLICATION_NAME_LIMIT",
    "CARRIERS",
    "KERNEL_USER_AGENT_LIMIT",
    "SPARK_CONNECT_LIMIT",
    "Carrier",
    "debug",
    "exported",
    "own_value",
]

#: NAMEDATALEN - 1: PostgreSQL silently cuts ``application_name`` after 63 bytes
APPLICATION_NAME_LIMIT = 63
#: the Spark Connect client refuses a user part over 2048 characters after URL-quoting
SPARK_CONNECT_LIMIT = 2048
#: the SQL connector's kernel backend sends 1024 bytes of the connector's User-Agent
#: (``user_agent_entry`` inside it) and cuts the rest from the end
KERNEL_USER_AGENT_LIMIT = 1024


class Carrier:
    """Where a client carries the value, the byte limit it imposes (if any), and the
    module under ``ua_autotag.merge`` that holds its merge rule."""

    __slots__ = ("description", "max_bytes", "module", "name")

    def __init__(
        self, name: str, description: str, module: str, max_bytes: Optional[int] = None
    ) -> None:
        self.name = name
        self.description = description
        self.module = module
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"Carrier({self.name!r}, max_bytes={self.max_bytes!r})"


CARRIERS: Dict[str, Carrier] = {
    c.name: c
    for c in (
        Carrier("http-user-agent", "HTTP User-Agent header (Databricks SDK, REST)", "http"),
        Carrier("user_agent_entry", "databricks-sql-connector user_agent_entry", "entry"),
        Carrier("odbc", "ODBC / JDBC UserAgentEntry attribute", "odbc"),
        Carrier(
            "application_name",
            "PostgreSQL / Lakebase application_name",
            "libpq",
            APPLICATION_NAME_LIMIT,
        ),
        Carrier("spark_connect", "Spark Connect client user agent", "spark", SPARK_CONNECT_LIMIT),
    )
}


def exported(environ: Dict[str, str], var: str, value: str) -> None:
    """Set ``var`` (``PGAPPNAME``...) to ``value`` for a launched child, remembering the
    caller's own value so that the child's Python clients merge with that, not with ours
    (a product's connection must carry its value alone, not the default's next to it).
    """
    original = own_value(environ, var)
    if original is None:
        environ.pop(f"UA_AUTOTAG_ORIGINAL_{var}", None)
    else:
        environ[f"UA_AUTOTAG_ORIGINAL_{var}"] = original
    environ[f"UA_AUTOTAG_EXPORTED_{var}"] = value
    environ[var] = value


def own_value(environ: Mapping[str, str], var: str) -> Optional[str]:
    """The caller's own value of ``var``: what it was before a launcher exported ours.

    A value the application set itself (different from what the launcher exported) is
    the application's.
    """
    value = environ.get(var)
    if value is not None and environ.get(f"UA_AUTOTAG_EXPORTED_{var}") == value:
        return environ.get(f"UA_AUTOTAG_ORIGINAL_{var}")
    return value


def debug(message: str, *args: object) -> None:
    """Log at DEBUG on the ``ua_autotag`` logger (``logging`` is imported on first use)."""
    import logging

    logging.getLogger("ua_autotag").debug(message, *args)
