"""httpx: our token in the User-Agent of calls to Databricks hosts (sync and async).

Patch points: ``Client._send_single_request`` and ``AsyncClient._send_single_request``
- the one funnel every request passes per hop (redirects included), whatever the
transport (custom, proxy-mounted, mock), after auth and event hooks ran, so the
header is final. They are private but present, unchanged in shape, since httpx 0.18;
if a release drops them the integration reports ``failed`` and leaves httpx alone.

The transport gets a shallow copy of the ``Request`` with its own headers: the
client's redirect loop keeps building from the caller's untagged request, so a
redirect to a non-Databricks host leaves exactly as it would without us.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..engine.attribution import for_object
from ..hosts import HostRules
from ..spec import Integration, Patch, Tag
from .requests import send_tagged


def _databricks(rules: HostRules, request: Any) -> bool:
    return rules.match(request.url.host)


def _tag_request(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    return send_tagged(tag, args, kwargs, _databricks)


INTEGRATION = Integration(
    name="httpx",
    supported=">=0.23,<1",
    system="databricks",
    patches=(
        # the transport runs below: nothing of ours inside (leaf)
        Patch(
            "httpx",
            "Client._send_single_request",
            before=_tag_request,
            settings=for_object,
            leaf=True,
        ),
        Patch(
            "httpx",
            "AsyncClient._send_single_request",
            before=_tag_request,
            settings=for_object,
            leaf=True,
        ),
        Patch("httpx", "Client.__init__", pin="create"),
        Patch("httpx", "AsyncClient.__init__", pin="create"),
    ),
)
