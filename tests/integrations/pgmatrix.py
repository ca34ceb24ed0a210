"""The PostgreSQL test matrix shared by the psycopg, psycopg2, asyncpg and SQLAlchemy tests.

What the user supplied (none / short / long / non-ASCII), what we expect to be sent for
each mode, what PostgreSQL then shows in ``pg_stat_activity``, and a runner for the
"client imported after instrument()" half of the matrix (a fresh interpreter: a client
cannot be un-imported). Imports no client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

UA = "AcmePartner_DatEngProduct/3.5"
OTHER = "Other_X/1"
MODES = ("append", "replace", "keep")

#: 72 ASCII bytes, over the 63-byte limit on its own
LONG = "".join(f"{i:02d}-" for i in range(24))
#: the 33 bytes of LONG that fit before " " + UA (29 bytes) in 63
LONG_APPENDED = "00-01-02-03-04-05-06-07-08-09-10- " + UA
NONASCII = "Grüße-App"

USER_VALUES: dict[str, Optional[str]] = {
    "none": None,
    "short": "myapp",
    "long": LONG,
    "nonascii": NONASCII,
}

#: a password planted in every input shape; it must never reach a span or a log
SECRET = "s3cr3t-Pw-0451"

REPO = Path(__file__).resolve().parents[2]


def expected_sent(mode: str, user: Optional[str], ours: str = UA) -> str:
    """What ua-autotag must send, written out rather than computed by the code under test."""
    if user is None or mode == "replace":
        return ours
    if mode == "keep":
        return user
    if user == LONG:
        assert ours == UA, "LONG_APPENDED is written for UA"
        return LONG_APPENDED
    return f"{user} {ours}"


def server_view(sent: str, server_version_num: int) -> str:
    """What ``pg_stat_activity.application_name`` shows for ``sent``.

    PostgreSQL <= 15 turns every non-printable-ASCII byte into ``?``; 16+ into ``\\xNN``.
    Then it keeps the first 63 bytes.
    """
    out = []
    for ch in sent:
        if " " <= ch <= "~":
            out.append(ch)
        elif server_version_num >= 160000:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("?" * len(ch.encode()))
    return "".join(out)[:63]


@contextlib.contextmanager
def pgappname_env(value: Optional[str]) -> Iterator[None]:
    """``PGAPPNAME`` set to ``value`` (or unset) for the block, restored afterwards."""
    saved = os.environ.pop("PGAPPNAME", None)
    if value is not None:
        os.environ["PGAPPNAME"] = value
    try:
        yield
    finally:
        os.environ.pop("PGAPPNAME", None)
        if saved is not None:
            os.environ["PGAPPNAME"] = saved


def cases(entries: tuple[str, ...], sources: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(entry, source, value kind): every source for every value, 'none' once per entry."""
    out = []
    for entry in entries:
        out.append((entry, sources[0], "none"))
        out.extend((entry, s, v) for s in sources for v in USER_VALUES if v != "none")
    return out


def case_id(entry: str, source: str, kind: str, mode: str) -> str:
    return f"{entry}-{source}-{kind}-{mode}"


def run_with_value(
    conn_args: Callable[[str, Optional[str]], tuple[str, dict[str, Any]]],
    open_and_read: Callable[[str, str, dict[str, Any]], Any],
    entry: str, source: str, kind: str,
) -> str:
    """One matrix case: the user value of ``kind`` given through ``source`` (PGAPPNAME for
    ``env``), a connection opened through ``entry``; what the server calls it."""
    value = USER_VALUES[kind]
    dsn, kwargs = conn_args(source, value)
    with pgappname_env(value if source == "env" else None):
        result = open_and_read(entry, dsn, kwargs)
        return str(asyncio.run(result) if inspect.iscoroutine(result) else result)


def check_failed_span_clean(spans: Any, integration: str, log_text: str) -> list[Any]:
    """One good and one failed connect (port 1) were made with :data:`SECRET` planted:
    two spans, the second an error, and the secret nowhere. Returns the spans."""
    made = connect_spans(spans, integration)
    assert len(made) == 2
    assert made[1].status.status_code.name == "ERROR"
    assert made[1].attributes["server.port"] == 1
    assert secret_free(made) == []
    assert SECRET not in log_text
    return made


def run_fresh(test_module: str, clients: tuple[str, ...], extra: str = "") -> dict[str, Any]:
    """Run ``test_module.run_case`` over its ``CASES`` in a fresh interpreter, instrumented
    *before* the client is imported; returns its results (``{case_id: application_name}``).

    The child asserts that none of ``clients`` was imported before ``instrument()``.
    """
    script = f"""
import json, sys
import ua_autotag
from tests.integrations.pgmatrix import case_id
ua_autotag.instrument({UA!r})
early = [m for m in {clients!r} if m in sys.modules]
assert not early, f"imported before instrument(): {{early}}"
import {test_module} as t  # imports the client now, after instrument()
assert all(ua_autotag.status()[c].state == "patched" for c in t.INTEGRATIONS), ua_autotag.status()
results = {{}}
for mode in {MODES!r}:
    ua_autotag.instrument({UA!r}, mode=mode)
    results.update({{case_id(*c, mode): t.run_case(*c) for c in t.CASES}})
{extra}
print("RESULT " + json.dumps(results))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env.pop("PGAPPNAME", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result


def secret_free(spans: Any) -> list[str]:
    """Every attribute / event value of ``spans`` that contains :data:`SECRET`."""
    leaks = []
    for span in spans:
        values = [*span.attributes.values(), span.name, span.status.description or ""]
        for event in span.events:
            values.extend(event.attributes.values())
        leaks.extend(f"{span.name}: {v}" for v in values if SECRET in str(v))
    return leaks


def connect_spans(spans: Any, integration: str) -> list[Any]:
    """The finished connect spans one integration produced."""
    return [
        s for s in spans.get_finished_spans()
        if s.attributes.get("ua_autotag.integration") == integration
    ]
