"""aiohttp: our token in the User-Agent of calls to Databricks hosts.

Patch point: ``ClientRequest.send`` - one call per request actually sent (each
redirect hop and each retry of a middleware included), after the session's and the
request's headers were merged, auth applied and client middlewares ran, so the header
is final. Every ``ClientSession`` reaches it (``session.get``, ``session.request``,
``aiohttp.request``), and so do the clients built on aiohttp: the Airflow Databricks
provider's async hook, ``unitycatalog-client``.

Each hop gets a fresh ``ClientRequest`` whose header dict is its own copy (aiohttp
rebuilds it from the session's and the caller's headers on every hop), so setting
the header on it leaves the caller's dicts untouched and a redirect to a
non-Databricks host leaves exactly as it would without us
(``response.request_info.headers`` shows what was sent). Sessions keep the product
whose code created them (the request's ``_session``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..engine.attribution import for_object
from ..hosts import rules_for
from ..merge.http import merge_rest_user_agent
from ..settings import Settings
from ..spec import Integration, Patch, Tag

#: aiohttp's own ``hdrs.USER_AGENT`` (an ``istr``: the header dict skips lower-casing
#: it, half the cost of a plain str key); looked up at the first request
_USER_AGENT: Any = None

#: (settings, host, the request's User-Agent) -> the header to send, None to leave it:
#: every request to one host with one header decides alike (the settings fix the rule,
#: the value and the mode); bounded, cleared when full
_DECIDED: Dict[Tuple[Settings, Any, Optional[str]], Optional[str]] = {}
_DECIDED_MAX = 512


def _decide(tag: Tag, host: Any, existing: Optional[str]) -> Optional[str]:
    """The User-Agent to send to ``host`` in place of ``existing``; None: leave it."""
    merged = None
    if rules_for(tag.settings).match(host):
        merged = merge_rest_user_agent(existing, tag.value, tag.mode)
        if merged == existing:
            merged = None
    if len(_DECIDED) >= _DECIDED_MAX:
        _DECIDED.clear()
    _DECIDED[(tag.settings, host, existing)] = merged
    return merged


def _tag_send(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    global _USER_AGENT
    key = _USER_AGENT
    if key is None:
        from aiohttp import hdrs

        key = _USER_AGENT = hdrs.USER_AGENT
    headers = instance.headers
    existing = headers.get(key)
    if existing is not None and not isinstance(existing, str):
        return args, kwargs
    host = instance.url.raw_host
    try:
        merged = _DECIDED[(tag.settings, host, existing)]
    except KeyError:
        merged = _decide(tag, host, existing)
    if merged is not None:
        headers[key] = merged  # this hop's own dict (see the module docstring)
    return args, kwargs


def _target(instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, Any]:
    """(host, port) of the request: the connection report matches it to the socket the
    connector opened just before ``send``."""
    url = instance.url
    return url.host, url.port


def _session_settings(request: Any) -> Optional[Settings]:
    """The settings of the session sending ``request`` (its pin), else the rule now."""
    session = getattr(request, "_session", None)
    return for_object(request if session is None else session)


INTEGRATION = Integration(
    name="aiohttp",
    supported=">=3.8,<4",
    system="databricks",
    patches=(
        # the connection's protocol writes below: nothing of ours inside (leaf)
        Patch(
            "aiohttp.client_reqrep",
            "ClientRequest.send",
            before=_tag_send,
            settings=_session_settings,
            target=_target,
            leaf=True,
        ),
        Patch("aiohttp.client", "ClientSession.__init__", pin="create"),
    ),
)
