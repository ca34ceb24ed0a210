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
:func:`ua_autotag.merge.http.merge_rest_user_agent`. No span per request (see README).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from ..engine.attribution import for_object
from ..hosts import HostRules, rules_for
from ..merge.http import tagged_request
from ..spec import Integration, Patch, Tag


def send_tagged(
    tag: Tag,
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    databricks: Callable[[HostRules, Any], bool],
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The send call's arguments with its ``request`` (first argument) tagged when
    ``databricks(rules, request)``; shared with httpx, whose funnel has the same shape."""
    request: Any = args[0] if args else kwargs.get("request")
    if not databricks(rules_for(tag.settings), request):
        return args, kwargs
    sent = tagged_request(request, tag.value, tag.mode)
    if sent is None:
        return args, kwargs
    return ((sent, *args[1:]), kwargs) if args else (args, {**kwargs, "request": sent})


def _databricks(rules: HostRules, request: Any) -> bool:
    url = getattr(request, "url", None)
    return type(url) is str and rules.match_url(url)


def _tag_request(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    return send_tagged(tag, args, kwargs, _databricks)


INTEGRATION = Integration(
    name="requests",
    supported=">=2.25,<3",
    system="databricks",
    patches=(
        # a pinned adapter sends as its product (pin="use" on the tagging layer itself):
        # the urllib3 pools it creates and calls underneath resolve to the same product
        Patch(
            "requests.adapters",
            "HTTPAdapter.send",
            before=_tag_request,
            settings=for_object,
            pin="use",
        ),
        # a Session's adapters are made in Session.__init__: they keep the creating product
        Patch("requests.adapters", "HTTPAdapter.__init__", pin="create"),
    ),
)
