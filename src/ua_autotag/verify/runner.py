"""``ua-autotag verify``: does the tag reach each installed client's server?

For every supported client that is installed, one probe (``verify/probes.py``) runs in
a fresh interpreter: it instruments with that integration alone, opens a real
connection to a local peer (the HTTP header recorder, the Spark Connect gRPC peer,
the PostgreSQL server, unixODBC with a trace) and reports what the peer received.
This module runs the probes in parallel, judges each row and prints the table.

Verdicts: ``ok`` (the peer received our value), ``missing`` (the connection was
made, the value was not in it), ``error`` (the probe could not connect), and
``skipped: <reason>``. Exit 0 only when every installed integration is ok; a row
skipped because its client is not installed does not count against it, nor does a
client verify has no local peer for (jaydebeapi needs a JDBC driver jar,
databricks-connect a workspace: their rows say so).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["ROWS", "Row", "Verdict", "carries", "run", "verify"]


@dataclass(frozen=True)
class Row:
    """One line of the table: which probe proves which integration, for which client."""

    probe: str
    integration: str
    label: str
    distributions: Tuple[str, ...]
    carrier: str
    #: a reason when verify has no local peer for this client (a tolerated skip)
    no_peer: Optional[str] = None


ROWS: Tuple[Row, ...] = (
    Row(
        "databricks_sdk", "databricks_sdk", "databricks_sdk", ("databricks-sdk",), "http-user-agent"
    ),
    Row(
        "databricks_sql",
        "databricks_sql",
        "databricks_sql",
        ("databricks-sql-connector",),
        "user_agent_entry",
    ),
    Row(
        "databricks_sqlalchemy",
        "databricks_sql",
        "databricks_sql (sqlalchemy)",
        ("databricks-sqlalchemy",),
        "user_agent_entry",
    ),
    Row("requests", "requests", "requests", ("requests",), "http-user-agent"),
    Row("httpx", "httpx", "httpx", ("httpx",), "http-user-agent"),
    Row("urllib3", "urllib3", "urllib3", ("urllib3",), "http-user-agent"),
    Row(
        "spark_connect",
        "spark_connect",
        "spark_connect",
        ("pyspark-client", "pyspark-connect", "pyspark"),
        "spark_connect",
    ),
    Row(
        "databricks_connect",
        "databricks_connect",
        "databricks_connect",
        ("databricks-connect",),
        "spark_connect",
        no_peer="databricks-connect needs a Databricks workspace; no local peer",
    ),
    Row("psycopg", "psycopg", "psycopg", ("psycopg",), "application_name"),
    Row("psycopg2", "psycopg2", "psycopg2", ("psycopg2", "psycopg2-binary"), "application_name"),
    Row("asyncpg", "asyncpg", "asyncpg", ("asyncpg",), "application_name"),
    Row("pyodbc", "pyodbc", "pyodbc", ("pyodbc",), "odbc"),
    Row(
        "jaydebeapi",
        "jaydebeapi",
        "jaydebeapi",
        ("jaydebeapi", "JayDeBeApi"),
        "odbc",
        no_peer="needs a JDBC driver jar and a JVM; no local peer",
    ),
)


@dataclass
class Verdict:
    """The judged result of one row."""

    integration: str
    label: str
    client: Optional[str]
    version: Optional[str]
    carrier: str
    received: Optional[str]
    verdict: str  # ok | missing | error | skipped: <reason>
    detail: str = ""
    passed: bool = False
    seconds: float = 0.0


_TOKEN_SPLIT = re.compile(r"[\s();,=\[\]{}\"']+")


def carries(received: Optional[str], value: str) -> bool:
    """Whether ``received`` holds ``value`` as a whole token (not ``.../3.55`` for ``/3.5``)."""
    if not received:
        return False
    return value in _TOKEN_SPLIT.split(received)


def _installed(distributions: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    from importlib import metadata

    for dist in distributions:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def default_pg_dsns(environ: Dict[str, str]) -> List[str]:
    """Where to find PostgreSQL when no ``--pg-dsn`` is given, in order."""
    if any(environ.get(v) for v in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")):
        return [""]  # libpq reads its environment
    return [
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        "port=5432 user=postgres dbname=test",
    ]  # no host: the local socket


#: never passed to a probe: a value set outside would tag (or mis-route) the connection
#: behind the integration's back, and credentials have no business near a local peer
_DROP_PREFIXES = (
    "UA_AUTOTAG_USER_AGENT",
    "UA_AUTOTAG_ISV",
    "UA_AUTOTAG_PRODUCT",
    "UA_AUTOTAG_VERSION",
    "DATABRICKS_",
)
_DROP = ("PGAPPNAME", "SPARK_CONNECT_USER_AGENT", "SPARK_REMOTE", "ODBCSYSINI", "ODBCINI")


def _probe_env(environ: Dict[str, str], workdir: str, row: Row) -> Dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP}
    no_proxy = ",".join(
        filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"])
    )
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if row.probe == "pyodbc":
        from .probes import odbc_setup

        folder = odbc_setup(workdir)
        if folder is not None:
            env["ODBCSYSINI"] = folder
            env["ODBCINI"] = os.path.join(folder, "odbc.ini")
    return env


def _run_probe(
    row: Row, job: Dict[str, Any], environ: Dict[str, str], timeout: float
) -> Dict[str, Any]:
    from .probes import MARKER, sqlite_odbc_driver

    if row.probe == "pyodbc" and sqlite_odbc_driver() is None:
        return {"skip": "cannot probe: no SQLite ODBC driver (install libsqliteodbc)"}
    with tempfile.TemporaryDirectory(prefix="ua-autotag-verify-") as workdir:
        env = _probe_env(environ, workdir, row)
        payload = json.dumps({**job, "integration": row.integration, "workdir": workdir})
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "ua_autotag.verify.probes", row.probe],
                input=payload,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=workdir,  # -m puts the cwd on sys.path: never the user's folder
            )
        except subprocess.TimeoutExpired:
            return {"error": f"probe timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            result: Dict[str, Any] = json.loads(line[len(MARKER) :])
            return result
    from ..telemetry import scrub

    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = tail[-1] if tail else f"exit status {proc.returncode}"
    return {"error": scrub(f"probe crashed: {last}")[:300]}


def _judge(
    row: Row,
    value: str,
    result: Dict[str, Any],
    client: Optional[str],
    version: Optional[str],
    disabled: Sequence[str],
) -> Verdict:
    verdict = Verdict(
        row.integration, row.label, client, version, row.carrier, result.get("received"), ""
    )
    status = result.get("status") or {}
    state = status.get("state")
    why = (
        f"ua_autotag status: {state}" + (f" ({status['reason']})" if status.get("reason") else "")
        if state
        else ""
    )
    if "skip" in result:
        verdict.verdict = f"skipped: {result['skip']}"
        verdict.detail = result["skip"]
        return verdict
    if "error" in result:
        verdict.verdict = "error"
        verdict.detail = "; ".join(filter(None, [result["error"], why]))
        return verdict
    if carries(verdict.received, value):
        verdict.verdict, verdict.passed = "ok", True
        verdict.detail = result.get("where", "")
        return verdict
    verdict.verdict = "missing"
    hints = [f"not in {result.get('where', 'what the peer received')}"]
    if row.integration in disabled or "all" in disabled:
        hints.append("disabled by UA_AUTOTAG_DISABLED_INTEGRATIONS")
    elif why:
        hints.append(why)
    verdict.detail = "; ".join(hints)
    return verdict


def verify(
    value: str,
    *,
    pg_dsns: Optional[List[str]] = None,
    only: Optional[Sequence[str]] = None,
    timeout: float = 120.0,
    environ: Optional[Dict[str, str]] = None,
    workers: Optional[int] = None,
) -> List[Verdict]:
    """Probe every installed client with ``value``; one :class:`Verdict` per row."""
    env = dict(os.environ if environ is None else environ)
    disabled = [
        d.strip().lower()
        for d in env.get("UA_AUTOTAG_DISABLED_INTEGRATIONS", "").split(",")
        if d.strip()
    ]
    job = {"user_agent": value, "pg_dsns": pg_dsns if pg_dsns else default_pg_dsns(env)}
    rows = [r for r in ROWS if not only or r.integration in only or r.probe in only]
    verdicts: Dict[str, Verdict] = {}
    todo: List[Tuple[Row, Optional[str], Optional[str]]] = []
    for row in rows:
        client, version = _installed(row.distributions)
        if version is None:
            verdicts[row.probe] = Verdict(
                row.integration,
                row.label,
                None,
                None,
                row.carrier,
                None,
                "skipped: not installed",
                passed=True,
                detail=" / ".join(row.distributions),
            )
        elif row.no_peer:
            verdicts[row.probe] = Verdict(
                row.integration,
                row.label,
                client,
                version,
                row.carrier,
                None,
                f"skipped: {row.no_peer}",
                passed=True,
                detail=row.no_peer,
            )
        else:
            todo.append((row, client, version))

    def one(item: Tuple[Row, Optional[str], Optional[str]]) -> Verdict:
        row, client, version = item
        start = time.monotonic()
        result = _run_probe(row, job, env, timeout)
        verdict = _judge(row, value, result, client, version, disabled)
        verdict.seconds = round(time.monotonic() - start, 2)
        return verdict

    n = workers or max(2, min(4, os.cpu_count() or 2))  # probes are CPU-bound imports
    with ThreadPoolExecutor(max_workers=n) as pool:
        for (row, _, _), verdict in zip(todo, pool.map(one, todo)):
            verdicts[row.probe] = verdict
    return [verdicts[r.probe] for r in rows]


# --------------------------------------------------------------------------- output


def _table(verdicts: List[Verdict]) -> str:
    head = ("integration", "client", "carrier", "received by the peer", "verdict")
    lines = []
    for v in verdicts:
        client = f"{v.client} {v.version}" if v.version else "-"
        lines.append((v.label, client, v.carrier, v.received or "-", v.verdict))
    widths = [max(len(head[i]), *(len(line[i]) for line in lines)) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[4]]
    out.append("  ".join("-" * w for w in widths) + "  " + "-" * len(head[4]))
    for line, v in zip(lines, verdicts):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[4])
        if not v.passed and v.detail and not v.verdict.startswith("skipped"):
            out.append(" " * (widths[0] + 2) + f"-> {v.detail}")
    return "\n".join(out)


def run(
    user_agent: Optional[str] = None,
    *,
    as_json: bool = False,
    pg_dsn: Optional[str] = None,
    only: Optional[str] = None,
    timeout: float = 120.0,
) -> int:
    """The ``verify`` subcommand: resolve the value, probe, print; returns the exit status."""
    from .. import settings as config
    from ..cli import DEMO_USER_AGENT, CliError
    from ..value import UserAgent

    env = dict(os.environ)
    if user_agent is not None:
        ua, source = UserAgent.parse(user_agent), "--user-agent"
    elif (
        env.get("UA_AUTOTAG_USER_AGENT")
        or env.get("UA_AUTOTAG_ISV")
        or env.get("UA_AUTOTAG_PRODUCT")
    ):
        settings = config.resolve(environ=env)
        ua, source = settings.user_agent, settings.sources.get("user_agent", "environment")
    else:
        ua, source = UserAgent.parse(DEMO_USER_AGENT), "demo"
    names = None
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        known = {r.integration for r in ROWS} | {r.probe for r in ROWS}
        unknown = sorted(set(names) - known)
        if unknown:
            raise CliError(
                f"--only: unknown integrations: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
    # the carriers of the integrations in use must take the value before anything is
    # sent (a disabled one is probed all the same, and reported missing)
    off = {d.strip().lower() for d in env.get("UA_AUTOTAG_DISABLED_INTEGRATIONS", "").split(",")}
    for carrier in sorted(
        {r.carrier for r in ROWS if "all" not in off and r.integration not in off}
    ):
        ua.render(carrier)

    started = time.monotonic()
    verdicts = verify(
        str(ua), pg_dsns=[pg_dsn] if pg_dsn is not None else None, only=names, timeout=timeout
    )
    elapsed = time.monotonic() - started
    passed = all(v.passed for v in verdicts)
    failed = [v.label for v in verdicts if not v.passed]
    if as_json:
        print(
            json.dumps(
                {
                    "user_agent": str(ua),
                    "source": source,
                    "ok": passed,
                    "seconds": round(elapsed, 2),
                    "results": [asdict(v) for v in verdicts],
                },
                indent=2,
            )
        )
        return 0 if passed else 1
    if source == "demo":
        print(
            f"no --user-agent and no UA_AUTOTAG_USER_AGENT: verifying with the demo value "
            f"{ua} (pass --user-agent to check your own)"
        )
    else:
        print(f"verifying {ua} (from {source})")
    print(_table(verdicts))
    print()
    if passed:
        print(f"ok: every installed client carried {ua} to its server ({elapsed:.1f} s)")
    else:
        print(f"FAILED: {', '.join(failed)} did not carry {ua} to the server ({elapsed:.1f} s)")
    return 0 if passed else 1
