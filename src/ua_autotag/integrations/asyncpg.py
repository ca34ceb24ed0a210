"""asyncpg: ``application_name`` via ``server_settings``, one connect span each.

``asyncpg.connect`` (and so ``create_pool``, pools made before instrumentation,
``from asyncpg import connect`` bound early, SQLAlchemy's asyncpg dialect) awaits
``asyncpg.connect_utils._connect(**kwargs)``, looked up at call time, with the
caller's ``dsn`` and ``server_settings`` still separate. asyncpg sends
``server_settings`` over the DSN query (``{**query, **server_settings}``), so the
caller's value is ``server_settings["application_name"]``, else the URI's
``?application_name=`` (parsed the way asyncpg does: last value wins, blanks
dropped). asyncpg ignores ``PGAPPNAME`` and ``fallback_application_name`` is not an
asyncpg setting, so neither is a caller value here: we never make asyncpg send a
value it would not have sent. The result goes in a copy of ``server_settings``.

``_connect`` is private: should a release rename it, ``asyncpg.connection.connect``
(a ``fallback`` patch, unwrapped while ``_connect`` is there) tags instead, with the
same merge, and only the early-bound path is lost.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from .. import telemetry
from ..merge.libpq import merge_application_name
from ..spec import Integration, Patch, Tag, pool_pins

DEFAULT_PORT = 5432


def _uri_application_name(dsn: Any) -> Optional[str]:
    if not dsn or not isinstance(dsn, str):
        return None
    return _uri_application_name_of(dsn)


@functools.lru_cache(maxsize=256)  # the same few DSNs per process; never logged
def _uri_application_name_of(dsn: str) -> Optional[str]:
    """``?application_name=`` of a URI as asyncpg reads it (last value wins)."""
    query = urllib.parse.urlparse(dsn).query
    if not query:
        return None
    values = urllib.parse.parse_qs(query).get("application_name")
    return values[-1] if values else None


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _target(kwargs: Dict[str, Any]) -> Tuple[Optional[str], Any]:
    """(server.address, server.port) of the first host asyncpg will try."""
    host, port = _first(kwargs.get("host")), _first(kwargs.get("port"))
    dsn = kwargs.get("dsn")
    if not host and isinstance(dsn, str):
        first = urllib.parse.urlsplit(dsn).netloc.rpartition("@")[2].split(",")[0]
        name, colon, dsn_port = first.rpartition(":")
        if not colon or "]" in dsn_port:  # no port, or a bare [IPv6] literal
            name, dsn_port = first, ""
        host = urllib.parse.unquote(name.strip("[]")) or None
        port = port or dsn_port or None
    host = host or os.environ.get("PGHOST")
    return (str(host) if host else None), port or os.environ.get("PGPORT") or DEFAULT_PORT


def _before_connect(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    settings = kwargs.get("server_settings")
    if settings is not None and not isinstance(settings, dict):
        return args, kwargs  # asyncpg rejects it itself; do not mask its error
    dsn = args[0] if args else kwargs.get("dsn")  # connect(dsn, ...) may be positional
    existing = None if settings is None else settings.get("application_name")
    if existing is None:
        existing = _uri_application_name(dsn)
    value = merge_application_name(existing, tag.value, tag.mode)
    if telemetry.current() is not None:  # the target is for the span only
        tag.note(value, *_target({**kwargs, "dsn": dsn}))
    if value == existing:
        return args, kwargs  # what asyncpg sends already (server_settings or the URI)
    return args, {**kwargs, "server_settings": {**(settings or {}), "application_name": value}}


INTEGRATION = Integration(
    name="asyncpg",
    # 0.27/0.28 pools open every connection after the first through _connect_addr with the
    # first one's parameters: no tag if instrumented later, scoped values ignored, no span
    supported=">=0.29,<1",
    system="postgresql",
    patches=(
        Patch("asyncpg.connect_utils", "_connect", before=_before_connect, span=True),
        Patch(
            "asyncpg.connection",
            "connect",
            before=_before_connect,
            span=True,
            optional=True,
            fallback=True,
        ),
        *pool_pins("asyncpg.pool", "Pool", "_get_new_connection", when=None),
    ),
)
