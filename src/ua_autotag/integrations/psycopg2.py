"""psycopg2: ``application_name`` on every connection, one connect span each.

``psycopg2.connect`` builds the final DSN (``extensions.make_dsn``) and hands it to
``psycopg2._connect``, a C function it looks up at call time. Wrapping ``_connect``
covers ``connect``, a ``connect`` bound early, URIs, ``connection_factory``, the
``psycopg2.pool`` classes and SQLAlchemy, with the DSN already final. The DSN is
parsed and rebuilt with psycopg2's own ``parse_dsn`` / ``make_dsn`` (its quoting;
a URI comes back as a key=value string), and only when the value changes.

The parse and rebuild are the cost (~40 us), and their result depends only on (the
DSN, our value, the mode, and ``PGAPPNAME`` when the DSN names no application): it is
kept in a bounded per-process cache (:data:`_CACHE`, cleared when full). DSNs may
carry passwords: the cache is never logged or exposed.
"""

from __future__ import annotations

import os
from typing import Any, Dict, NamedTuple, Optional, Tuple

from .. import telemetry
from ..merge import own_value
from ..merge.libpq import merge_application_name
from ..spec import Integration, Patch, Tag, argument, pool_pins, with_argument
from .psycopg import DEFAULT_PORT

_CACHE_MAX = 256


class Plan(NamedTuple):
    """What to send for one (DSN, value, mode): computed once, reused per connect."""

    dsn: Optional[str]  # the DSN to pass instead, None: the caller's is already right
    sent: str  # the application_name the server will see
    env: Optional[str]  # PGAPPNAME the plan was made with (only if it was read)
    uses_env: bool  # the caller's value came from PGAPPNAME / the fallback rule
    host: Optional[str]  # from the DSN, for the span (environment fallbacks at note time)
    port: Any
    target: Optional[Tuple[Optional[str], Optional[int]]]  # both in the DSN: as noted


_CACHE: Dict[Tuple[str, str, str], Plan] = {}


def plan(dsn: str, ours: str, mode: str) -> Plan:
    """The :class:`Plan` for ``dsn`` (cached; a changed ``PGAPPNAME`` is a miss)."""
    key = (dsn, ours, mode)
    found = _CACHE.get(key)
    if found is not None and (not found.uses_env or os.environ.get("PGAPPNAME") == found.env):
        return found
    made = _make_plan(dsn, ours, mode)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = made
    return made


def _make_plan(dsn: str, ours: str, mode: str) -> Plan:
    """Uncached: parse, merge per libpq precedence, rebuild with psycopg2's quoting."""
    from psycopg2.extensions import make_dsn, parse_dsn

    params: Dict[str, Any] = parse_dsn(dsn)
    explicit = params.get("application_name")
    env: Optional[str] = None
    if explicit is not None:
        existing: Optional[str] = str(explicit)
        caller = existing
    else:  # libpq reads PGAPPNAME; the caller's own is the one before a launcher's export
        env = os.environ.get("PGAPPNAME")
        own = own_value(os.environ, "PGAPPNAME")
        fallback = params.get("fallback_application_name")
        fallback = None if fallback is None else str(fallback)
        existing = env if env is not None else fallback
        caller = own if own is not None else fallback
    value = merge_application_name(caller, ours, mode)
    host = params.get("host") or params.get("hostaddr")
    port = params.get("port")
    # None: libpq already sends exactly this (explicit, env or fallback); else psycopg2's
    # own quoting, from the parsed parameters (one parse less than make_dsn(dsn, ...))
    new_dsn = None if value == existing else make_dsn(**{**params, "application_name": value})
    return Plan(new_dsn, value, env, explicit is None, host, port, _noted(host, port))


def _noted(host: Any, port: Any) -> Optional[Tuple[Optional[str], Optional[int]]]:
    """(address, port) as the span and the report take them (the first of a list); None
    when the DSN lacks one of them (the environment's then, read at each connect)."""
    if not host or not port:
        return None
    try:
        number: Optional[int] = int(str(port).split(",")[0])
    except ValueError:
        number = None
    return str(host).split(",")[0] or None, number


def _before_connect(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    dsn = argument(args, kwargs, 0, "dsn")
    found = plan(dsn or "", tag.value, tag.mode)
    handle = telemetry.current()
    if handle is not None and found.target is not None:
        handle.set(found.sent, *found.target)
    elif handle is not None:
        host = found.host or os.environ.get("PGHOST")
        port = found.port or os.environ.get("PGPORT") or DEFAULT_PORT
        address = str(host).split(",")[0] or None if host else None
        telemetry.note_to(handle, found.sent, address, str(port).split(",")[0])
    if found.dsn is None:
        return args, kwargs
    return with_argument(args, kwargs, 0, "dsn", found.dsn)


INTEGRATION = Integration(
    name="psycopg2",
    supported=">=2.8,<3",
    system="postgresql",
    patches=(
        Patch("psycopg2", "_connect", before=_before_connect, span=True, essential=True),
        *pool_pins("psycopg2.pool", "AbstractConnectionPool", "_connect"),
    ),
)
