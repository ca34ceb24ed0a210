"""connectorx: ``application_name`` in the PostgreSQL URI of ``read_sql``.

connectorx (Rust, rust-postgres) takes one connection URI and opens its connections
inside the call (one per partition, plus one for the metadata), so the value goes into
the URI's ``?application_name=``, merged with one already there (63-byte rule, as for
libpq). It reads no environment: ``PGAPPNAME`` is no caller value here.

Patch points: ``connectorx.read_sql`` (``read_sql_pandas`` and polars'
``read_database_uri``, whose default engine is connectorx, call it through the module),
``get_meta`` and ``partition_sql``. A dict of URIs (a federated query) gets each of its
PostgreSQL URIs tagged; other backends' URIs are left alone. No connect span: the
connections are internal to a call that also runs the query. The URI (it may hold a
password) is never logged or put on a span.

connectorx before 0.4.6 re-encodes the URI's query on its way to the server: a space in
``application_name`` arrives as ``+`` (``my app`` shows as ``my+app``, without us too).
Our value alone has no space and arrives intact; a caller's name and ours, joined by a
space, cannot both arrive. There the URI is left as the caller wrote it (their name, not
ours) and one warning says why and what to change.
"""

from __future__ import annotations

import functools
import logging
import os
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from .. import telemetry
from ..merge import own_value
from ..merge.libpq import (
    URI_SCHEMES,
    conninfo_parameter,
    merge_application_name,
    uri_parameter,
    with_conninfo_parameter,
    with_uri_parameter,
)
from ..spec import Integration, Patch, Tag, argument, with_argument

DEFAULT_PORT = 5432
#: the first release that sends a space in the URI's application_name as a space
SPACES_INTACT = "0.4.6"

logger = logging.getLogger("ua_autotag")
_warned: list[bool] = []  # the one warning about spaces, given


@functools.lru_cache(maxsize=1)
def _spaces_intact() -> bool:
    """Whether the installed connectorx delivers a space in application_name as one."""
    from importlib.metadata import version

    from packaging.version import Version

    try:
        return Version(version("connectorx")) >= Version(SPACES_INTACT)
    except Exception:  # unknown: assume the current behaviour
        return True


def _merged_with_a_space(value: str) -> bool:
    """``value`` joins a caller's name and ours with a space the client would turn into
    ``+`` (connectorx before 0.4.6): True after warning once."""
    if " " not in value or _spaces_intact():
        return False
    if not _warned:
        _warned.append(True)
        logger.warning(
            "ua_autotag: connectorx before %s sends a space in application_name as '+', so "
            "the URI's own application_name and ours cannot both arrive; these URIs are "
            "left as they are (untagged). Upgrade connectorx, drop application_name from "
            "the URI, or use mode='replace'.",
            SPACES_INTACT,
        )
    return True


def tag_connection_string(tag: Tag, conn: Any, libpq: bool) -> Optional[str]:
    """``conn`` (a PostgreSQL URI; for ``libpq`` clients also a ``key=value`` conninfo)
    with our ``application_name`` merged in, or None to leave it as it is.

    ``libpq``: the client reads ``PGAPPNAME`` when the string names no
    ``application_name``, so the caller's own ``PGAPPNAME`` is the caller's value.
    Parsing and rewriting are cached per string (a process uses a few).
    """
    if not isinstance(conn, str):
        return None
    uri, existing = _parsed(conn, libpq)
    if uri is None:
        return None
    caller, sent = existing, existing
    if existing is None and libpq:
        caller, sent = own_value(os.environ, "PGAPPNAME"), os.environ.get("PGAPPNAME")
    value = merge_application_name(caller, tag.value, tag.mode)
    if value != sent and sent is not None and not libpq and _merged_with_a_space(value):
        value = sent  # the caller's own name: left as they wrote it
    if telemetry.current() is not None:
        tag.note(value, *(_uri_target(conn) if uri else _conninfo_target(conn)))
    return None if value == sent else _rewritten(conn, uri, value)


@functools.lru_cache(maxsize=256)  # the same few strings per process; never logged
def _parsed(conn: str, libpq: bool) -> Tuple[Optional[bool], Optional[str]]:
    """(is a URI - None: not a PostgreSQL string we handle, its application_name)."""
    if conn.startswith(URI_SCHEMES):
        return True, uri_parameter(conn, "application_name")
    if libpq and "=" in conn:
        return False, conninfo_parameter(conn, "application_name")
    return None, None


@functools.lru_cache(maxsize=256)
def _rewritten(conn: str, uri: bool, value: str) -> str:
    return (with_uri_parameter if uri else with_conninfo_parameter)(conn, "application_name", value)


def _uri_target(uri: str) -> Tuple[Optional[str], Any]:
    """(server.address, server.port) of a URI's first host; never its credentials."""
    first = urllib.parse.urlsplit(uri).netloc.rpartition("@")[2].split(",")[0]
    name, colon, port = first.rpartition(":")
    if not colon or "]" in port:
        name, port = first, ""
    host = urllib.parse.unquote(name.strip("[]")) or uri_parameter(uri, "host")
    host = host or os.environ.get("PGHOST")
    return host or None, port or os.environ.get("PGPORT") or DEFAULT_PORT


def _conninfo_target(conninfo: str) -> Tuple[Optional[str], Any]:
    host = conninfo_parameter(conninfo, "host") or os.environ.get("PGHOST")
    port = conninfo_parameter(conninfo, "port") or os.environ.get("PGPORT") or DEFAULT_PORT
    return (host.split(",")[0] if host else None), str(port).split(",")[0]


def _tag_conn(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    conn = argument(args, kwargs, 0, "conn")
    if isinstance(conn, dict):  # federated: {name: uri}
        tagged = {k: tag_connection_string(tag, v, False) or v for k, v in conn.items()}
        if all(tagged[k] is conn[k] for k in conn):
            return args, kwargs
        return with_argument(args, kwargs, 0, "conn", tagged)
    new = tag_connection_string(tag, conn, False)
    return (args, kwargs) if new is None else with_argument(args, kwargs, 0, "conn", new)


INTEGRATION = Integration(
    name="connectorx",
    supported=">=0.3.2,<1",
    system="postgresql",
    patches=(
        Patch("connectorx", "read_sql", before=_tag_conn, essential=True),
        Patch("connectorx", "get_meta", before=_tag_conn, optional=True),
        Patch("connectorx", "partition_sql", before=_tag_conn, optional=True),
    ),
)
