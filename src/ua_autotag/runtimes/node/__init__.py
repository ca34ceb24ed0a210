"""The Node.js hook: ``--require <preload.cjs>`` appended to ``NODE_OPTIONS``.

The preload (this package's ``preload.cjs``) merges our value into ``userAgentEntry``
when the application connects with ``@databricks/sql`` (CommonJS or ESM). It reads the
value from ``UA_AUTOTAG_NODE_USER_AGENT`` (written here only when it differs from
``UA_AUTOTAG_USER_AGENT``) and the mode from ``UA_AUTOTAG_NODE_MODE`` (likewise, over
``UA_AUTOTAG_MODE``). node-postgres needs no hook: it reads ``PGAPPNAME``.
"""

from __future__ import annotations

import os
import zlib

from ...settings import NODE_MODE_VAR, NODE_USER_AGENT_VAR, VAR
from .. import trust

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing: ~4 ms of the launcher's start-up
    from typing import Any, Mapping, Optional

__all__ = [
    "NODE_MODE_ENV",
    "NODE_USER_AGENT_ENV",
    "PRELOAD",
    "PRELOAD_CRC32",
    "describe",
    "hook",
    "node_fragment",
    "parse_node_options",
]

NODE_USER_AGENT_ENV = NODE_USER_AGENT_VAR  # declared in ua_autotag.options
NODE_MODE_ENV = NODE_MODE_VAR

#: the Node.js preload shipped as package data
PRELOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload.cjs")
#: CRC-32 of PRELOAD as shipped: a damaged or truncated copy would make ``node`` itself
#: fail at start (a syntax error is not catchable inside the file), so it is checked
#: before the hook is added (damage, not tampering: whoever can rewrite the package can
#: rewrite this module too; zlib is loaded anyway, hashlib's OpenSSL would cost the
#: launcher ~2 ms). tests/runtimes checks this constant against the file.
PRELOAD_CRC32 = "9a636a45"


def parse_node_options(text: str) -> list[str]:
    """Split ``NODE_OPTIONS`` exactly as node does (``ParseNodeOptionsEnvVar``).

    Only spaces separate; double quotes group; a backslash escapes the next character
    inside quotes only. Raises ``ValueError`` where node would refuse to start.
    """
    args: list[str] = []
    in_string = False
    new_arg = True
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and in_string:
            if i + 1 == len(text):
                raise ValueError("invalid escape at the end")
            i += 1
            c = text[i]
        elif c == " " and not in_string:
            new_arg = True
            i += 1
            continue
        elif c == '"':
            in_string = not in_string
            i += 1
            continue
        if new_arg:
            args.append(c)
            new_arg = False
        else:
            args[-1] += c
        i += 1
    if in_string:
        raise ValueError("unterminated string")
    return args


def node_quote(arg: str) -> str:
    """``arg`` as one ``NODE_OPTIONS`` argument (quoted only when it must be)."""
    if arg and not any(c in arg for c in ' "\\'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_fragment(preload: str = PRELOAD) -> str:
    """What the hook appends to ``NODE_OPTIONS``."""
    return f"--require {node_quote(preload)}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _has_preload(args: list[str], preload: str) -> bool:
    for i, arg in enumerate(args):
        if arg in ("--require", "-r") and i + 1 < len(args) and _same_file(args[i + 1], preload):
            return True
        if arg.startswith("--require=") and _same_file(arg[len("--require=") :], preload):
            return True
    return False


def _preload_problem(preload: str) -> Optional[str]:
    """Why ``preload`` may not be handed to node: not where only you or root can write
    it (:mod:`ua_autotag.runtimes.trust`), unreadable, or damaged; None if it may."""
    try:
        trust.check(preload)
    except trust.Untrusted as exc:
        return f"{exc}: not handed to node; reinstall ua-autotag where only you or root can write"
    except OSError:
        pass  # unreadable: said below
    try:
        with open(preload, "rb") as fh:
            digest = f"{zlib.crc32(fh.read()):08x}"
    except OSError as exc:
        from ...cli.common import one_line

        reason = one_line(exc.strerror or str(exc))
        return f"preload file unreadable ({reason}: {preload}); reinstall ua-autotag"
    if digest != PRELOAD_CRC32:
        return (
            f"preload file damaged (content differs from the shipped one: {preload}); "
            "reinstall ua-autotag"
        )
    return None


def hook(env: dict[str, str], value: str, mode: str) -> Optional[str]:
    """Add the hook to ``env``; the reason it was skipped, or None."""
    problem = _preload_problem(PRELOAD)
    if problem is not None:
        return problem
    existing = env.get("NODE_OPTIONS", "")
    try:
        args = parse_node_options(existing)
    except ValueError as exc:
        return f"NODE_OPTIONS is not valid for node ({exc}); left unchanged"
    if not _has_preload(args, PRELOAD):
        fragment = node_fragment(PRELOAD)
        env["NODE_OPTIONS"] = f"{existing} {fragment}" if existing.strip() else fragment
    # the preload reads UA_AUTOTAG_USER_AGENT / UA_AUTOTAG_MODE (the launcher's own) unless
    # these say otherwise; written only when they must, removed when stale (nested runs)
    if env.get(VAR["user_agent"], "").strip() == value:
        env.pop(NODE_USER_AGENT_ENV, None)
    else:
        env[NODE_USER_AGENT_ENV] = value
    if (env.get(VAR["mode"], "").strip().lower() or "append") == mode:
        env.pop(NODE_MODE_ENV, None)
    else:
        env[NODE_MODE_ENV] = mode
    return None


def describe(env: Mapping[str, str], value: str) -> dict[str, Any]:
    """For ``doctor``: the hook's row (``reason`` None: it would be added). Reads only."""
    row: dict[str, Any] = {
        "runtime": "node",
        "variable": "NODE_OPTIONS",
        "fragment": node_fragment(PRELOAD),
        "covers": "@databricks/sql (userAgentEntry); node-postgres reads PGAPPNAME",
        "reason": _preload_problem(PRELOAD),
    }
    if row["reason"] is None:
        row["trusted"] = f"{PRELOAD}: owner and modes checked up to /"
    if row["reason"] is None:
        try:
            args = parse_node_options(env.get("NODE_OPTIONS", ""))
        except ValueError as exc:
            row["reason"] = f"NODE_OPTIONS is not valid for node ({exc})"
        else:
            row["present"] = _has_preload(args, PRELOAD)
    return row
