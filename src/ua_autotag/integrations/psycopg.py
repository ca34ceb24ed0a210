"""psycopg 3: ``application_name`` on every connection, one connect span each.

Tag: ``Connection._get_connection_params`` / ``AsyncConnection._get_connection_params``
return the merged parameter dict (conninfo string, URI, keywords) and every path
reaches them: ``psycopg.connect``, ``Connection.connect``, ``from psycopg import
connect`` bound before instrumentation (``psycopg.connect`` is a bound method made
once at import, so wrapping the class attribute alone would miss it), subclasses,
``psycopg_pool`` (it calls ``connection_class.connect``) and SQLAlchemy. The caller's
value is what libpq would send without us (keyword > conninfo/URI > ``PGAPPNAME`` >
``fallback_application_name``), merged per mode.

Span: around ``Connection.connect``, ``AsyncConnection.connect`` and the module's
``psycopg.connect``; the tagging step reports the target and the value into it. A
``connect`` bound before instrumentation runs none of those wrappers: the tagging step
then leaves its target and value in a contextvar, and ``psycopg.waiting.wait_conn`` /
``wait_conn_async`` (the network part of each connection attempt) open the span
only while one is pending, so that path gets a span per attempt (one, unless
multi-host) and cancellations, which also use ``wait_conn``, get none.
Those methods are private API: if a future psycopg drops ``_get_connection_params``
the connect-level wrappers rewrite the arguments instead (same merge, idempotent).
The span layers are ``spans_only``: with spans off or no OpenTelemetry SDK loaded they
are not wrapped at all, and a connect runs through ``_get_connection_params`` alone.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, Dict, Optional, Tuple

from .. import telemetry
from ..engine import attribution
from ..merge.libpq import libpq_application_name, merge_application_name
from ..spec import Integration, Patch, Tag, pool_pins

DEFAULT_PORT = 5432


def tag_params(tag: Tag, params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``params`` with our ``application_name`` merged in, or None to leave them alone.

    Also notes the target and the value the server will see on the connect span (only
    when one is open: the target reads the environment). Shared by psycopg2 (same
    libpq parameter names). The merge itself is cached
    (:func:`~ua_autotag.merge.libpq.merge_application_name`).
    """
    existing = libpq_application_name(params, os.environ)  # what libpq would send
    caller = libpq_application_name(params, os.environ, own=True)  # the caller's own
    value = merge_application_name(caller, tag.value, tag.mode)
    if telemetry.current() is not None:
        tag.note(value, *libpq_target(params))
    if value == existing:
        return None  # libpq already sends exactly this (explicit, env or fallback)
    new = dict(params)
    new["application_name"] = value
    return new


def libpq_target(params: Dict[str, Any]) -> Tuple[Optional[str], Any]:
    """(server.address, server.port) of the first host libpq will try."""
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST")
    port = params.get("port") or os.environ.get("PGPORT") or DEFAULT_PORT
    address = str(host).split(",")[0] or None if host else None
    return address, str(port).split(",")[0]


#: (value, address, port) of a connect that no connect-level wrapper spans (early-bound)
_UNSPANNED: contextvars.ContextVar[Optional[Tuple[str, Optional[str], Any]]] = (
    contextvars.ContextVar("ua_autotag_psycopg_unspanned", default=None)
)


def _after_params(tag: Tag, instance: Any, args: Any, kwargs: Any, result: Any) -> Any:
    new = tag_params(tag, result)
    params = result if new is None else new
    if not (tag.settings.spans and telemetry.may_record()):
        return params  # the bookkeeping below only serves spans (none can record)
    if telemetry.current() is None:
        value = libpq_application_name(params, os.environ) or ""
        _UNSPANNED.set((value, *libpq_target(params)))
    else:  # spanned by the connect wrapper; drop what a failed early-bound call left
        _UNSPANNED.set(None)
    return params


def _pending(settings: Any, instance: Any, args: Any, kwargs: Any) -> bool:
    return _UNSPANNED.get() is not None


def _note_pending(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    pending = _UNSPANNED.get()
    if pending is not None:
        tag.note(*pending)
    return args, kwargs


def _attempt_done(tag: Tag, instance: Any, args: Any, kwargs: Any, result: Any) -> Any:
    _UNSPANNED.set(None)  # connected: later wait_conn calls (cancel) are not connects
    return result


def _span_layer(instance: Any) -> Any:
    """Settings for the layers whose only job (beside a fallback) is the connect span.

    ``psycopg.connect`` / ``Connection.connect`` tag only when ``_get_connection_params``
    is missing, and ``wait_conn`` only serves the span of an early-bound connect: with
    spans off, or on with no OpenTelemetry SDK to record them (and the tagging step
    present), they pass straight through.
    """
    settings = attribution.current()
    if settings is None or (settings.spans and telemetry.may_record()):
        return settings
    if instance is not None and _tags_params(
        instance if isinstance(instance, type) else type(instance)
    ):
        return None
    return settings


_HAS_PARAMS: Dict[type, bool] = {}


def _tags_params(cls: type) -> bool:
    """Whether ``cls`` has ``_get_connection_params`` (our tagging step), per class.

    A static look-up: ``hasattr`` would bind our wrapper (a new bound wrapper per call).
    """
    found = _HAS_PARAMS.get(cls)
    if found is None:
        found = any("_get_connection_params" in vars(k) for k in cls.__mro__)
        if len(_HAS_PARAMS) >= 64:
            _HAS_PARAMS.clear()
        _HAS_PARAMS[cls] = found
    return found


def _wait_layer(instance: Any) -> Any:
    """``wait_conn``: attributed like any connect, nothing to do with spans off."""
    settings = attribution.current()
    if settings is not None and settings.spans and telemetry.may_record():
        return settings
    return None


def _before_connect(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    """Fallback for a psycopg without ``_get_connection_params``; a no-op otherwise."""
    if hasattr(instance, "_get_connection_params"):
        return args, kwargs  # tagged (and targeted) there, once
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    conninfo = args[0] if args else kwargs.get("conninfo", "")
    libpq_keys = {k: v for k, v in kwargs.items() if k not in _CONNECT_OPTIONS}
    new = tag_params(tag, conninfo_to_dict(conninfo, **libpq_keys))
    if new is None:
        return args, kwargs
    options = {k: v for k, v in kwargs.items() if k in _CONNECT_OPTIONS}
    options.pop("conninfo", None)
    return (make_conninfo("", **new), *args[1:]), options


_CONNECT_OPTIONS = frozenset(
    ("conninfo", "autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory")
)


def _connect_patch(path: str) -> Patch:
    return Patch(
        "psycopg", path, before=_before_connect, span=True, settings=_span_layer, spans_only=True
    )


INTEGRATION = Integration(
    name="psycopg",
    supported=">=3.1,<4",
    system="postgresql",
    patches=(
        Patch("psycopg", "Connection._get_connection_params", after=_after_params, optional=True),
        Patch(
            "psycopg", "AsyncConnection._get_connection_params", after=_after_params, optional=True
        ),
        _connect_patch("connect"),
        _connect_patch("Connection.connect"),
        _connect_patch("AsyncConnection.connect"),
        Patch(
            "psycopg.waiting",
            "wait_conn",
            before=_note_pending,
            after=_attempt_done,
            span=_pending,
            optional=True,
            settings=_wait_layer,
            spans_only=True,
        ),
        Patch(
            "psycopg.waiting",
            "wait_conn_async",
            before=_note_pending,
            after=_attempt_done,
            span=_pending,
            optional=True,
            settings=_wait_layer,
            spans_only=True,
        ),
        # pools keep the product whose code created them, for their worker threads
        *pool_pins("psycopg_pool", "ConnectionPool", "_connect"),
        *pool_pins("psycopg_pool", "AsyncConnectionPool", "_connect"),
    ),
)
