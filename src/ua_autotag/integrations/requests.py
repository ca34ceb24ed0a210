"""requests: our token in the User-Agent of calls to Databricks hosts.

Patch point: ``requests.adapters.HTTPAdapter.send`` - one call per request actually
sent (each redirect hop included), after the session merged its headers, cookies and
auth, so the header is final. Subclasses that call ``super().send`` are covered; an
adapter that does not derive from ``HTTPAdapter`` is not (none in requests itself).

The adapter gets a *copy* of the ``PreparedRequest`` carrying the merged header: the
session keeps the caller's object untouched, so a redirect to a non-Databricks host
is rebuilt from the untagged original and leaves exactly as it would without us
(``response.request`` is the copy: it shows what was sent). Which hosts count:
:mod:`ua_autotag.hosts`; how the header is merged:
:func:`ua_autotag.carriers.merge_rest_user_agent`. No span per request (see README).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..carriers import merge_rest_user_agent
from ..hosts import rules_for
from ..registry import Integration, Patch, Tag


def _tag_request(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    request: Any = args[0] if args else kwargs["request"]
    url = getattr(request, "url", None)
    if not isinstance(url, str) or not rules_for(tag.settings).match_url(url):
        return args, kwargs
    existing = request.headers.get("User-Agent")
    if existing is not None and not isinstance(existing, str):
        if not isinstance(existing, bytes):
            return args, kwargs
        existing = existing.decode("latin-1")
    merged = merge_rest_user_agent(existing, tag.value, tag.mode)
    if merged == existing:
        return args, kwargs
    sent = _copy(request)
    sent.headers["User-Agent"] = merged
    if args:
        return (sent, *args[1:]), kwargs
    return args, {**kwargs, "request": sent}


def _copy(request: Any) -> Any:
    """A shallow copy with its own headers (``PreparedRequest.copy`` also deep-copies
    the cookie jar, ~20 us; nothing below the session mutates it)."""
    sent = object.__new__(type(request))
    sent.__dict__.update(request.__dict__)
    sent.headers = request.headers.copy()
    return sent


INTEGRATION = Integration(
    name="requests",
    distributions=("requests",),
    supported=">=2.25,<3",
    system="databricks",
    patches=(Patch("requests.adapters", "HTTPAdapter.send", before=_tag_request),),
)
