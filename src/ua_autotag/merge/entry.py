"""The SQL connector's ``user_agent_entry`` (also behind the SQLAlchemy ``databricks`` dialect).

Pure functions: (the caller's entry, ours, mode) -> the entry to pass.
"""

from __future__ import annotations

import functools
from typing import Optional

from .tokens import merge_tokens

__all__ = ["SQLALCHEMY_MARKER", "merge_entry"]

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
