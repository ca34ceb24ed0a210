"""The SQL connector's ``user_agent_entry`` (also behind the SQLAlchemy ``databricks`` dialect).

Pure functions: (the caller's entry, ours, mode) -> the entry to pass.
"""

from __future__ import annotations

import functools
from typing import Optional

from .tokens import merge_tokens

__all__ = ["SQLALCHEMY_MARKER", "fit_entry", "merge_entry"]

#: what the databricks-sqlalchemy dialect puts in front of the caller's entry
SQLALCHEMY_MARKER = "sqlalchemy"


@functools.lru_cache(maxsize=256)  # (caller's entry, ours, mode): a few per process
def merge_entry(existing: Optional[str], ours: str, mode: str) -> str:
    """Merge ``ours`` into a connector ``user_agent_entry`` per ``mode``.

    ``"sqlalchemy + <entry>"`` (the dialect's marker) keeps its marker; the entry
    after it is the caller's value. An empty entry is no caller value, so ``keep``
    still adds ours there.
    """
    if existing is not None:
        head, plus, rest = existing.partition("+")
        if head.strip() == SQLALCHEMY_MARKER and (plus or not rest):
            return f"{SQLALCHEMY_MARKER} + {merge_tokens(rest.strip() or None, ours, mode)}"
    return merge_tokens(existing, ours, mode)


def fit_entry(entry: str, ours: str, budget: int) -> str:
    """``entry`` within ``budget`` UTF-8 bytes with ``ours`` whole, at its end.

    The caller's part (after the SQLAlchemy marker, if any) is cut on a character
    boundary; an entry without our token, or one that fits, is returned as is.
    """
    if len(entry.encode("utf-8")) <= budget or ours not in entry.split():
        return entry
    prefix, body = "", entry
    head, plus, rest = entry.partition("+")
    if plus and head.strip() == SQLALCHEMY_MARKER:
        prefix, body = f"{SQLALCHEMY_MARKER} + ", rest.strip()
    caller = " ".join(t for t in body.split(" ") if t != ours).strip()
    room = budget - len(prefix.encode("utf-8")) - len(ours.encode("utf-8")) - 1
    kept = caller.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore").rstrip(" ")
    return f"{prefix}{kept} {ours}" if kept else f"{prefix}{ours}"
