"""Hooks that carry the User-Agent into non-Python children of ``ua-autotag run``.

The launcher already exports ``PGAPPNAME`` (psql, libpq programs, node-postgres) and
``SPARK_CONNECT_USER_AGENT`` (Spark Connect clients, Python or Scala). What a Node.js or
Java child needs on top goes through variables their runtimes read at start-up, so no
program changes; one module per runtime (:mod:`.node`, :mod:`.java`), each with a
``hook(env, value, mode)`` (the reason it was skipped, or None) and a
``describe(env, value)`` row for ``doctor``. Their proofs against real peers live in
:mod:`ua_autotag.verify.runtimes`.

A runtime that is not on ``PATH`` gets its hook all the same (the child may start one
from another directory; an unused variable costs nothing) and no warning: ``describe``
reports it. A hook that cannot be set up (damaged preload file, unwritable cache, an
unparsable existing variable) is skipped with one warning line; nothing here raises.

Stdlib only and cheap to import: the launcher imports it on every ``run``.
"""

from __future__ import annotations

from ..catalog import RUNTIMES
from ..settings import MODES, VAR
from . import java, node

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing: ~4 ms of the launcher's start-up
    from typing import Any, Collection, Mapping, Optional

__all__ = ["HOOKS", "child_environment", "describe"]

#: the module of each runtime in :data:`ua_autotag.catalog.RUNTIMES`
HOOKS = {"node": node, "java": java}
assert tuple(HOOKS) == RUNTIMES


def _disabled(disabled: Collection[str]) -> set[str]:
    names = {str(n).strip().lower() for n in disabled}
    return set(RUNTIMES) if "all" in names else names


def child_environment(
    env: dict[str, str], value: str, mode: str, disabled: Collection[str] = ()
) -> list[str]:
    """Add the hook of every runtime not in ``disabled`` (``"all"`` = all) to ``env``.

    Returns one warning line per hook that had to be skipped; never raises, so the
    child always starts. Existing ``NODE_OPTIONS`` / ``JAVA_TOOL_OPTIONS`` are kept
    (ours is appended) and a second call on the result changes nothing.
    """
    from ..cli.common import one_line

    warnings: list[str] = []
    try:
        off = _disabled(disabled)
    except Exception as exc:  # a caller's odd collection: treat as none disabled
        warnings.append(f"runtime hooks: disabled list ignored ({one_line(str(exc))})")
        off = set()
    wanted = [r for r in RUNTIMES if r not in off]
    if not wanted:
        return warnings
    if not isinstance(value, str) or not value.strip():
        return [*warnings, *(f"{r} hook skipped: no User-Agent value" for r in wanted)]
    value = value.strip()
    mode = str(mode).strip().lower()
    if mode not in MODES:
        return [*warnings, *(f"{r} hook skipped: unknown mode {mode!r}" for r in wanted)]
    for runtime in wanted:
        try:
            problem = HOOKS[runtime].hook(env, value, mode)
        except Exception as exc:  # never let a hook stop the child
            problem = f"{type(exc).__name__}: {one_line(str(exc))}"
        if problem:
            warnings.append(f"{runtime} hook skipped: {problem}")
    return warnings


def describe(
    env: Mapping[str, str], disabled: Collection[str] = (), *, value: Optional[str] = None
) -> list[dict[str, Any]]:
    """Per runtime, for ``ua-autotag doctor``: would the hook be added, and what.

    Reads only (builds no jar). ``value`` defaults to what the preload would read from
    ``env``; without one the Java fragment names no jar.
    """
    import shutil

    off = _disabled(disabled)
    if value is None:
        value = (env.get(node.NODE_USER_AGENT_ENV) or env.get(VAR["user_agent"]) or "").strip()
    rows = []
    for runtime in RUNTIMES:
        row = HOOKS[runtime].describe(env, value)
        if runtime in off:
            row["reason"] = "disabled"
        row["binary"] = shutil.which(runtime, path=env.get("PATH"))
        row["would_add"] = row["reason"] is None
        if row["reason"] is None and row["binary"] is None:
            row["reason"] = (
                f"{runtime} not on PATH (the hook is added anyway: a child may find it later)"
            )
        rows.append(row)
    return rows
