"""Token lists (User-Agent style): the merge rule most carriers share.

Pure functions: (the caller's value, ours, mode) -> what to send. ``None`` or ``""``
for the caller's value means "not set".
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: the launcher merges through here
    from typing import Optional

__all__ = ["merge_product_token", "merge_tokens"]


def merge_tokens(existing: Optional[str], ours: str, mode: str, sep: str = " ") -> str:
    """Merge ``ours`` into a space-separated token list (User-Agent style).

    ``append`` keeps the caller's value and adds ours once (a no-op if our token is
    already there); ``replace`` sends ours only; ``keep`` leaves a caller's value alone.
    """
    if not existing or mode == "replace":
        return ours
    if mode == "keep":
        return existing
    if ours in existing.split():
        return existing
    return f"{existing}{sep}{ours}"


def merge_product_token(existing: Optional[str], ours: str, mode: str) -> str:
    """Merge ``ours`` into a User-Agent that lists several products (``name/version``).

    For headers composed by a client from many products (the Databricks SDK's
    ``<product>/<v> databricks-sdk-py/<v> python/<v> ... auth/pat``), where no token is
    the caller's alone to replace: every other product always stays. Products match
    on the name before ``/``:

    * ``append`` adds ours at the end unless the exact token is already there;
    * ``replace`` drops other versions of our product, then adds ours once;
    * ``keep`` adds ours only when no version of our product is there yet.
    """
    if not existing:
        return ours
    tokens = existing.split()
    if mode == "append":
        return existing if ours in tokens else f"{existing} {ours}"
    name = ours.split("/", 1)[0]
    same = [t for t in tokens if t.split("/", 1)[0] == name]
    if mode == "keep":
        return existing if same else f"{existing} {ours}"
    if same == [ours]:
        return existing
    kept = [t for t in tokens if t.split("/", 1)[0] != name]
    return " ".join([*kept, ours])
