"""urllib3: our token in the User-Agent of calls to Databricks hosts.

Patch point: ``HTTPConnectionPool.urlopen`` (``HTTPSConnectionPool`` inherits it) -
reached by ``PoolManager``, ``ProxyManager``, ``urllib3.request()``, ``requests`` and
every pool user. Retries and same-host redirects re-enter it with the headers we
already merged (our token is then found and nothing changes). Code that drives
``HTTPConnection`` directly, below the pool, is not covered.

The host is the pool's, or the URL's when the URL is absolute (a plain-HTTP proxy
pool forwards absolute URLs). The caller's header dict (often the pool's or the
``PoolManager``'s shared defaults) is never mutated: the call gets a copy. With no
User-Agent given, urllib3 would send ``python-urllib3/<version>``; that default is
what our value is merged with.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..engine.attribution import for_object
from ..hosts import rules_for
from ..merge.http import merge_rest_user_agent
from ..spec import Integration, Patch, Tag, argument, with_argument

_HEADERS_INDEX = 3  # urlopen(method, url, body, headers, ...)


def _default_user_agent() -> Optional[str]:
    import urllib3.connection

    get = getattr(urllib3.connection, "_get_default_user_agent", None)
    return get() if callable(get) else None


def _tag_urlopen(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    url = args[1] if len(args) > 1 else kwargs.get("url", "")
    rules = rules_for(tag.settings)
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        databricks = rules.match_url(url)  # cached per host[:port]
    else:
        databricks = rules.match(instance.host)
    if not databricks:
        return args, kwargs
    headers = argument(args, kwargs, _HEADERS_INDEX, "headers")
    if headers is None:
        headers = instance.headers
    if "User-Agent" in headers:  # the usual spelling (any spelling, for HTTPHeaderDict)
        key: Optional[str] = "User-Agent"
    else:
        key = next((k for k in headers if isinstance(k, str) and k.lower() == "user-agent"), None)
    existing = headers[key] if key is not None else _default_user_agent()
    if existing is not None and not isinstance(existing, str):
        return args, kwargs
    merged = merge_rest_user_agent(existing, tag.value, tag.mode)
    if merged == existing and key is not None:
        return args, kwargs
    sent = headers.copy() if hasattr(headers, "copy") else dict(headers)
    sent[key or "User-Agent"] = merged
    return with_argument(args, kwargs, _HEADERS_INDEX, "headers", sent)


INTEGRATION = Integration(
    name="urllib3",
    supported=">=1.26,<3",
    system="databricks",
    patches=(
        Patch(
            "urllib3.connectionpool",
            "HTTPConnectionPool.urlopen",
            before=_tag_urlopen,
            settings=for_object,
        ),
        # pools keep the creating product; a PoolManager's pools are made while it serves
        # a request, so they inherit its product
        Patch("urllib3.connectionpool", "HTTPConnectionPool.__init__", pin="create"),
        Patch("urllib3.poolmanager", "PoolManager.__init__", pin="create"),
        Patch("urllib3.poolmanager", "PoolManager.urlopen", pin="use"),
    ),
)
