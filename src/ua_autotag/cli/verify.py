"""``ua-autotag verify``: the command around :mod:`ua_autotag.verify.runner`.

Resolves the value (``--user-agent``, else the environment, else the demo value),
checks it against the carriers in use, runs the probes and prints the table (or
JSON). Exit 0 only when at least one row reached its peer and no row failed
(:func:`ua_autotag.verify.runner.outcome`): it never reports what it did not observe.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from .common import DEMO_USER_AGENT, CliError, Command, resolve_args

__all__ = ["COMMANDS"]


def _value(args: argparse.Namespace, env: Dict[str, str]) -> Tuple[str, str]:
    """(value, where it came from); raises CliError naming the option or variable."""
    from ..settings import has_user_agent

    if args.user_agent is None and not has_user_agent(env):
        resolve_args(argparse.Namespace(user_agent=DEMO_USER_AGENT), env)
        return DEMO_USER_AGENT, "demo"
    settings = resolve_args(argparse.Namespace(user_agent=args.user_agent), env)
    return str(settings.user_agent), settings.sources.get("user_agent", "environment")


def _only(raw: Optional[str]) -> Optional[List[str]]:
    if not raw:
        return None
    from ..verify.runner import ROWS

    names = [n.strip() for n in raw.split(",") if n.strip()]
    known = {r.integration for r in ROWS} | {r.probe for r in ROWS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise CliError(
            f"--only: unknown integrations: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    return names


def _table(verdicts: List[Any]) -> str:
    head = ("integration", "client", "carrier", "received by the peer", "verdict")
    lines = [
        (
            v.label,
            f"{v.client} {v.version}".strip() if v.client else "-",
            v.carrier,
            v.received or "-",
            v.verdict,
        )
        for v in verdicts
    ]
    widths = [max(len(head[i]), *(len(line[i]) for line in lines)) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[4]]
    out.append("  ".join("-" * w for w in widths) + "  " + "-" * len(head[4]))
    for line, v in zip(lines, verdicts):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[4])
        if v.detail and (not v.passed or v.verdict == "not reached"):
            out.extend(_wrapped(f"-> {v.detail}", widths[0] + 2))
    return "\n".join(out)


def _wrapped(text: str, indent: int) -> List[str]:
    """``text`` in full, wrapped at word boundaries to the terminal (never cut)."""
    import shutil
    import textwrap

    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    return textwrap.wrap(
        text,
        width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 3),
        break_long_words=False,
        break_on_hyphens=False,
    )


def _summary(value: str, verdicts: List[Any], elapsed: float) -> str:
    from ..verify.runner import outcome

    passed, _ = outcome(verdicts)
    failed = [v for v in verdicts if not v.passed]
    unreached = [v.label for v in verdicts if v.passed and v.verdict == "not reached"]
    skipped = [
        v.label
        for v in verdicts
        if v.verdict.startswith("skipped") and v.verdict != "skipped: not installed"
    ]
    notes = [f"not reached, so not proven: {', '.join(unreached)}"] if unreached else []
    if skipped:
        notes.append(f"skipped, not proven: {', '.join(skipped)}")
    note = "".join(f"; {n}" for n in notes)
    if failed:
        kinds: Dict[str, List[str]] = {}
        for v in verdicts:
            if not v.passed:
                kinds.setdefault(v.verdict, []).append(v.label)
        what = "; ".join(f"{kind}: {', '.join(labels)}" for kind, labels in kinds.items())
        return f"FAILED ({what}): {value} not proven there ({elapsed:.1f} s){note}"
    if not passed:
        return (
            f"NOT PROVEN: no client reached its peer, so nothing shows {value} arrives "
            f"({elapsed:.1f} s){note}"
        )
    reached = [v.label for v in verdicts if v.reached]
    return f"ok: {', '.join(reached)} carried {value} to the server ({elapsed:.1f} s){note}"


def _print_text(value: str, source: str, verdicts: List[Any], elapsed: float) -> None:
    if source == "demo":
        print(
            f"no --user-agent and no UA_AUTOTAG_USER_AGENT: verifying with the demo value "
            f"{value} (pass --user-agent to check your own)"
        )
    else:
        print(f"verifying {value} (from {source})")
    print(_table(verdicts))
    print()
    print(_summary(value, verdicts, elapsed))


def _print_json(value: str, source: str, verdicts: List[Any], elapsed: float) -> None:
    import json
    from dataclasses import asdict

    from ..verify.runner import outcome

    print(
        json.dumps(
            {
                "user_agent": value,
                "source": source,
                "ok": outcome(verdicts)[0],
                "reached": sum(v.reached for v in verdicts),
                "seconds": round(elapsed, 2),
                "results": [asdict(v) for v in verdicts],
            },
            indent=2,
        )
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..verify.runner import verify

    env = dict(os.environ)
    value, source = _value(args, env)
    names = _only(args.only)
    started = time.monotonic()
    pg_dsns = [args.pg_dsn] if args.pg_dsn is not None else None
    verdicts = verify(value, pg_dsns=pg_dsns, only=names, timeout=args.timeout, environ=env)
    show = _print_json if args.json else _print_text
    show(value, source, verdicts, time.monotonic() - started)
    from ..verify.runner import outcome

    return 0 if outcome(verdicts)[0] else 1


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user-agent",
        metavar="UA",
        help=f"value to verify (default: the environment, else the demo value {DEMO_USER_AGENT})",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--pg-dsn",
        metavar="DSN",
        help="PostgreSQL to connect to; unreachable is an error (default: libpq environment, "
        "else host=127.0.0.1 port=5432 user=postgres dbname=test, then the local socket; "
        "unreachable there is a skip)",
    )
    parser.add_argument("--only", metavar="A,B", help="probe only these integrations")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="per-probe timeout (default 120)",
    )


COMMANDS = (
    Command(
        "verify",
        _cmd_verify,
        _arguments,
        help="prove the tag reaches each installed client's server (local peers)",
        description="For every supported client that is installed: instrument, open a real "
        "connection against a local peer (HTTP header recorder, Spark Connect gRPC server, "
        "the PostgreSQL at --pg-dsn, unixODBC with a trace), and show what the peer "
        "received; the launcher's node and java hooks likewise. Verdicts: ok (the peer "
        "received the value), missing (reached the peer, the value was not there), not "
        "reached (no connection: nothing proven; fails the run when --pg-dsn named that "
        "server), error (the probe failed), skipped (not installed, no local peer). Exit 0 "
        "only when at least one row reached its peer and no row failed.",
    ),
)
