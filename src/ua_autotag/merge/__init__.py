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
    from typing import Dict, Optional

__all__ = ["CARRIERS", "Carrier", "debug"]


class Carrier:
    """Where a client carries the value, and the byte limit it imposes (if any)."""

    __slots__ = ("description", "max_bytes", "name")

    def __init__(self, name: str, description: str, max_bytes: Optional[int] = None) -> None:
        self.name = name
        self.description = description
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"Carrier({self.name!r}, max_bytes={self.max_bytes!r})"


CARRIERS: Dict[str, Carrier] = {
    c.name: c
    for c in (
        Carrier("http-user-agent", "HTTP User-Agent header (Databricks SDK, REST)"),
        Carrier("user_agent_entry", "databricks-sql-connector user_agent_entry"),
        Carrier("odbc", "ODBC / JDBC UserAgentEntry attribute"),
        Carrier("application_name", "PostgreSQL / Lakebase application_name", 63),
        Carrier("spark_connect", "Spark Connect client user agent", 2048),
    )
}


def debug(message: str, *args: object) -> None:
    """Log at DEBUG on the ``ua_autotag`` logger (``logging`` is imported on first use)."""
    import logging

    logging.getLogger("ua_autotag").debug(message, *args)
