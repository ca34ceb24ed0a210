"""ADBC PostgreSQL (``adbc-driver-postgresql``): ``application_name`` in the URI.

The driver is libpq underneath and takes one connection string (URI or ``key=value``
conninfo): the value goes into it, merged with the caller's own - the string's
``application_name``, else (libpq's precedence) the caller's ``PGAPPNAME`` - with the
63-byte rule. Without us the driver is tagged only by the ``PGAPPNAME`` the launcher
exports.

Patch point: ``adbc_driver_postgresql.connect(uri, db_kwargs)`` - the low-level entry
that ``adbc_driver_postgresql.dbapi.connect`` calls through the module, and so polars'
``read_database_uri(engine="adbc")`` and pandas / polars given such a connection. One
connect span per call (the driver connects there). An ``AdbcDatabase`` built directly
from ``adbc_driver_manager`` with the driver's path is not covered.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..spec import Integration, Patch, Tag, argument, with_argument
from .connectorx import tag_connection_string


def _tag_connect(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    new = tag_connection_string(tag, argument(args, kwargs, 0, "uri"), True)
    return (args, kwargs) if new is None else with_argument(args, kwargs, 0, "uri", new)


INTEGRATION = Integration(
    name="adbc_postgresql",
    supported=">=0.8,<2",
    system="postgresql",
    patches=(Patch("adbc_driver_postgresql", "connect", before=_tag_connect, span=True),),
)
