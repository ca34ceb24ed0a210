"""databricks-sql-connector: our value in ``user_agent_entry``, once per connection.

One patch, ``databricks.sql.client.Connection.__init__``: every path reaches it -
``databricks.sql.connect`` (which looks ``Connection`` up at call time), a
``connect`` bound before ``instrument()``, subclasses and the SQLAlchemy
``databricks`` dialect. The keyword arguments it receives feed both places the
connector builds its User-Agent, ``PyDatabricksSqlConnector/<v> (<entry>)``:

* ``Session.__init__`` (Thrift, SEA and kernel requests; feature-flag requests)
  reads ``user_agent_entry``, falling back to the deprecated ``_user_agent_entry``;
* ``utils.build_client_context`` (telemetry, including the connection-failure
  log) reads ``user_agent_entry`` only.

So we always write the merged value to ``user_agent_entry``. The kernel backend
(``use_kernel=True``, and the connector's automatic fall-back onto it for warehouses
that reject Thrift) sends at most 1024 bytes of that header and cuts the end - where
our token is - so on every backend the caller's part of an entry is shortened (on a
character boundary, logged at DEBUG) to keep the whole header within 1024 bytes.
A caller's own value - ``user_agent_entry``, else ``_user_agent_entry`` - is merged per
mode (append adds
ours once, replace sends ours, keep leaves it alone). ``_user_agent_entry`` is left
in place but no longer read, so the connector's deprecation warning does not fire
(we never pass that keyword ourselves). The SQLAlchemy dialect's ``do_connect``
listener has already turned the entry into ``"sqlalchemy + <entry>"``: that marker
is kept and only the part after it is merged.

Span: one per ``Connection``, ``db.system.name="databricks"`` (the OpenTelemetry
database conventions define no value for Databricks SQL; we use the lower-case
product name, as for ``postgresql``), ``server.address`` / ``server.port`` from the
arguments (the ``_connection_uri`` when the Thrift backend will use it, else
``server_hostname`` and ``_port``, default 443). The access token is never read.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from .. import telemetry
from ..merge import KERNEL_USER_AGENT_LIMIT, debug
from ..merge.entry import fit_entry, merge_entry
from ..spec import Integration, Patch, Tag

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]


def _tag_entry(tag: Tag, instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Args, Kwargs]:
    entry = kwargs.get("user_agent_entry")
    if entry is None:
        entry = kwargs.get("_user_agent_entry")
    if entry is not None and not isinstance(entry, str):
        return args, kwargs  # not a value we understand: leave the call as it is
    merged = merge_entry(entry, tag.value, tag.mode)
    # at most 4 bytes a character, and under 100 bytes around the entry: a shorter one fits
    if len(merged) > (KERNEL_USER_AGENT_LIMIT - 100) // 4:
        fitted = fit_entry(merged, tag.value, _entry_budget())
        if fitted != merged:
            debug(
                "ua_autotag: user_agent_entry cut to fit the SQL kernel's %d-byte User-Agent: "
                "kept %d of %d characters",
                KERNEL_USER_AGENT_LIMIT,
                len(fitted),
                len(merged),
            )
            merged = fitted
    if telemetry.current() is not None:  # the header is for the span only
        tag.note(_header(merged))
    if merged == kwargs.get("user_agent_entry"):
        return args, kwargs
    return args, {**kwargs, "user_agent_entry": merged}


@functools.lru_cache(maxsize=1)
def _product() -> str:
    from databricks.sql import __version__

    return f"PyDatabricksSqlConnector/{__version__}"


def _entry_budget() -> int:
    """Bytes the entry may take so that the whole header fits the kernel's limit.

    The connector writes ``<product> (<entry>)`` and, under an AI coding agent it
    detects, `` agent/<name>``; without its detector, room for the longest is kept.
    """
    try:
        from databricks.sql.common.agent import detect

        agent = detect()  # type: ignore[no-untyped-call]
        suffix = len(f" agent/{agent}") if agent else 0
    except Exception:
        suffix = 32
    return KERNEL_USER_AGENT_LIMIT - len(_header("x").encode("utf-8")) + 1 - suffix


def _header(entry: str) -> str:
    """The header the connector composes from ``entry`` (before its agent/ suffix)."""
    return f"{_product()} ({entry})" if entry else _product()


def _note_sent(tag: Tag, instance: Any, args: Args, kwargs: Kwargs, result: Any) -> Any:
    """After a successful connect, report the header the session actually built."""
    if telemetry.current() is None:
        return result
    session = getattr(instance, "session", None)
    sent = getattr(session, "useragent_header", None)
    if isinstance(sent, str):
        tag.note(sent)
    return result


@functools.lru_cache(maxsize=64)
def _split(url: str) -> Tuple[Optional[str], Optional[int]]:
    """(hostname, explicit port) of a URL or bare host; never userinfo or path."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    try:
        return parts.hostname, parts.port
    except ValueError:  # a port that is not a number: the connector will complain
        return parts.hostname, None


def target(instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Optional[str], Any]:
    """(address, port) the connection goes to; no path, query or credentials."""
    uri = kwargs.get("_connection_uri")
    if isinstance(uri, str) and uri and not (kwargs.get("use_sea") or kwargs.get("use_kernel")):
        host, port = _split(uri)
        return host, port or (80 if uri.lower().startswith("http://") else 443)
    server = kwargs.get("server_hostname", args[0] if args else None)
    if not isinstance(server, str) or not server:
        return None, None
    host, port = _split(server)
    return host, kwargs.get("_port") or port or 443


INTEGRATION = Integration(
    name="databricks_sql",
    # user_agent_entry read first (``_user_agent_entry`` deprecated) from 4.0.2 on; 4.0.0
    # reads only ``_user_agent_entry``. Verified on 4.0.2 and 4.9 (``nox -s matrix``).
    supported=">=4.0.2,<5",
    system="databricks",
    patches=(
        Patch(
            "databricks.sql.client",
            "Connection.__init__",
            before=_tag_entry,
            after=_note_sent,
            span=True,
            target=target,
        ),
    ),
)
