"""REST ``User-Agent`` headers (requests, httpx, urllib3, aiohttp): ours once, clients' own kept.

Carrier ``http-user-agent`` (:data:`ua_autotag.merge.CARRIERS`).

Pure functions, plus the request copy every REST integration sends instead of the caller's object.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any, Dict, Optional

from .tokens import merge_product_token, merge_tokens

__all__ = [
    "DATABRICKS_CLIENT_MARKERS",
    "HTTP_LIBRARY_DEFAULTS",
    "copy_with_header",
    "merge_rest_user_agent",
    "merge_sdk_header",
    "tagged_request",
]

#: User-Agent tokens of Databricks clients that carry our value through their own
#: integration (databricks_sdk, databricks_sql): the REST layer leaves them alone.
DATABRICKS_CLIENT_MARKERS = ("databricks-sdk-py/", "PyDatabricksSqlConnector/")

#: The default User-Agent of the HTTP libraries (``python-requests/2.32.3`` ...): a
#: library default is not a caller's explicit value, so ``keep`` still adds ours.
HTTP_LIBRARY_DEFAULTS = ("python-requests/", "python-httpx/", "python-urllib3/")

#: aiohttp's default is two tokens, ``Python/3.11 aiohttp/3.13.3``
_AIOHTTP_DEFAULT = ("Python/", "aiohttp/")


def _library_default(existing: str) -> bool:
    """Whether ``existing`` is an HTTP library's own default User-Agent."""
    if " " not in existing:
        return existing.startswith(HTTP_LIBRARY_DEFAULTS)
    first, _, second = existing.partition(" ")
    return (
        first.startswith(_AIOHTTP_DEFAULT[0])
        and second.startswith(_AIOHTTP_DEFAULT[1])
        and " " not in second
    )


@functools.lru_cache(maxsize=256)  # (caller's header, ours, mode): a few per process
def merge_rest_user_agent(existing: Optional[str], ours: str, mode: str) -> str:
    """The User-Agent a REST call to a Databricks host sends; ``existing`` if no change.

    * our token already there (any mode): unchanged - never twice, even when two
      layers (requests over urllib3) or the SDK integration got there first;
    * a header built by the Databricks SDK or SQL connector: unchanged - those clients
      have their own integration, which merges per mode (and may be disabled on
      purpose);
    * an HTTP library's default (``python-requests/x``): ``keep`` acts as ``append``;
    * otherwise :func:`merge_tokens`.
    """
    if existing:
        if ours in existing.split():
            return existing
        for marker in DATABRICKS_CLIENT_MARKERS:
            if marker in existing:
                return existing
        if mode == "keep" and _library_default(existing):
            mode = "append"
    return merge_tokens(existing, ours, mode)


def tagged_request(request: Any, ours: str, mode: str) -> Any:
    """A copy of ``request`` whose ``User-Agent`` carries ours, or None to send it as is.

    For the REST clients' request objects (requests' ``PreparedRequest``, httpx's
    ``Request``): a header that is neither text nor bytes is not ours to touch.
    """
    headers = request.headers
    store = _requests_store(headers)
    if store is not None:  # requests: read its store directly (its get() is 3 calls deep)
        found = store.get("user-agent")
        existing = None if found is None else found[1]
    else:
        existing = headers.get("User-Agent")
    if isinstance(existing, bytes):
        existing = existing.decode("latin-1")
    elif existing is not None and not isinstance(existing, str):
        return None
    merged = merge_rest_user_agent(existing, ours, mode)
    return None if merged == existing else copy_with_header(request, "User-Agent", merged, store)


#: header classes seen, and whether each is requests' ``CaseInsensitiveDict``
_IS_REQUESTS_DICT: Dict[type, bool] = {}


def _requests_store(headers: Any) -> Any:
    """The ``_store`` (lower-case name -> (name, value)) of requests' header dict, else None."""
    kind = type(headers)
    known = _IS_REQUESTS_DICT.get(kind)
    if known is None:
        known = kind.__name__ == "CaseInsensitiveDict" and kind.__module__ == "requests.structures"
        if len(_IS_REQUESTS_DICT) < 64:
            _IS_REQUESTS_DICT[kind] = known
    if not known:
        return None
    store = getattr(headers, "_store", None)
    return store if type(store) is OrderedDict else None


def copy_with_header(message: Any, name: str, value: str, store: Any = None) -> Any:
    """A shallow copy of an HTTP request object with its own headers, ``name`` set.

    The client sends the copy, so the caller's object (and a redirect rebuilt from it)
    stays untouched. Shallow on purpose: ``requests``' own ``copy()`` deep-copies the
    cookie jar (~20 us) and nothing below the send step mutates it. ``store``: the
    headers' requests store, when the caller already looked it up.
    """
    sent = object.__new__(type(message))
    sent.__dict__ = message.__dict__.copy()
    headers = message.headers
    if store is None:
        store = _requests_store(headers)
    if store is not None:
        # requests' CaseInsensitiveDict: its copy() re-inserts key by key in Python;
        # copying its store (lower-case key -> (key, value), an OrderedDict) is the
        # same dict, at C speed
        copied = object.__new__(type(headers))
        copied._store = store = store.copy()
        store[name.lower()] = (name, value)
        sent.headers = copied
        return sent
    sent.headers = headers.copy()
    sent.headers[name] = value
    return sent


@functools.lru_cache(maxsize=256)  # (SDK header, ours, mode): a handful per process
def merge_sdk_header(raw: str, ours: str, mode: str) -> str:
    """Merge ``ours`` into an SDK User-Agent; the leading product slot is never touched.

    The first token is the application's ``product/product_version`` (or the SDK's
    ``unknown/0.0.0``): it always stays, even when it names our own product. If it is
    exactly our token, or (``keep``) any version of our product, the header already
    identifies us and is sent as is. Otherwise the rest is merged by
    :func:`ua_autotag.carriers.merge_product_token`.
    """
    product, _, rest = raw.partition(" ")
    if product == ours or (mode == "keep" and product.split("/", 1)[0] == ours.split("/", 1)[0]):
        return raw
    return f"{product} {merge_product_token(rest, ours, mode)}"
