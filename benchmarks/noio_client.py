"""A client with a connect call and no I/O: isolates the wrapper's own cost.

Same shape as a real client entry point (keyword arguments, a headers mapping that
the integration rewrites), but the "connection" is the dict of headers it got.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


def connect(
    *,
    host: Optional[str] = None,
    port: Optional[int] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    return headers or {}
