"""The Spark Connect client user agent (pyspark, Databricks Connect): ours once, within 2048.

Carrier ``spark_connect`` (:data:`ua_autotag.merge.CARRIERS`).

Pure functions: (the caller's user part, ours, mode) -> what to send.
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import Optional

from . import SPARK_CONNECT_LIMIT
from .tokens import merge_tokens

__all__ = ["DEFAULT_USER_AGENT", "merge_result", "merge_user_part"]

DEFAULT_USER_AGENT = "_SPARK_CONNECT_PYTHON"  # pyspark's placeholder, not a caller's value


@functools.lru_cache(maxsize=256)  # the same few values on every request of a process
def merge_user_part(existing: Optional[str], ours: str, mode: str, tail: str = "") -> str:
    """Merge ``ours`` into a Spark Connect user part, within the client's limit.

    ``tail`` is whatever follows in the same ``user_agent`` parameter (Databricks
    Connect's own tokens); it counts towards the limit. Raises ``ValueError`` (not a
    configuration error: the caller's value is what is long) when the result would
    exceed it; the registry then leaves the call untagged and warns once.
    """
    if existing == DEFAULT_USER_AGENT or not existing:
        existing = None
    merged = merge_tokens(existing, ours, mode)
    quoted = len(urllib.parse.quote(merged + tail))
    if quoted > SPARK_CONNECT_LIMIT:
        raise ValueError(
            f"the Spark Connect user agent would be {quoted} characters after URL-quoting "
            f"with ours appended, over the client's {SPARK_CONNECT_LIMIT}; the caller's "
            f"{len(existing or '')}-character value is sent unchanged"
        )
    return merged


@functools.lru_cache(maxsize=256)  # per request, the same few values: cache the whole step
def merge_result(result: str, user: str, own: str, ours: str, mode: str) -> str:
    """The user agent ``result`` (whose user part is ``user``, the caller's own part
    ``own``) with ``ours`` merged in."""
    if result.startswith(user + " "):
        rest = result[len(user) :]
    else:  # a subclass with its own layout: treat the whole value as the caller's
        user, own, rest = result, result, ""
    merged = merge_user_part(own, ours, mode)
    return merged + rest if merged != user else result
