"""The variables ``ua-autotag run`` exports for clients that read them themselves.

``PGAPPNAME`` (libpq programs, node-postgres) and ``SPARK_CONNECT_USER_AGENT`` (Spark
Connect clients, Python or Scala): how ours joins the caller's own value of each. The
launcher merges through here on every ``run``: no ``typing`` at run time.
"""

from __future__ import annotations

from . import exported, own_value
from .libpq import pgappname
from .tokens import merge_tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional

__all__ = ["RULES", "export"]

#: variable -> (the caller's value, ours, mode) -> what to export. The Spark Connect
#: client puts the variable's value in its User-Agent as it is: a token list.
RULES: Dict[str, Callable[[Optional[str], str, str], str]] = {
    "PGAPPNAME": pgappname,
    "SPARK_CONNECT_USER_AGENT": merge_tokens,
}


def export(environ: Dict[str, str], var: str, ours: str, mode: str) -> None:
    """Merge ``ours`` into the caller's own ``var`` per ``mode`` and export the result."""
    exported(environ, var, RULES[var](own_value(environ, var), ours, mode))
