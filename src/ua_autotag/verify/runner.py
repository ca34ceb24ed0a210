"""The engine of ``ua-autotag verify``: does the tag reach each installed client's server?

For every supported client that is installed, one probe (``verify/probes.py``) runs in
a fresh interpreter: it instruments with that integration alone, opens a real
connection to a local peer (the HTTP header recorder, the Spark Connect gRPC peer,
the PostgreSQL server, unixODBC with a trace) and reports what the peer received. The
launcher's Node.js and Java hooks are proven by ``verify/runtimes.py``. The rows
derive from the catalog (one per integration, plus the SQLAlchemy dialect probe and
the runtimes); this module runs them in parallel and judges each. The command itself
(options, table, exit status) is ``ua_autotag.cli.verify``.

Verdicts: ``ok`` (reached the peer, which received our value), ``missing`` (reached
the peer, the value was not there, or the hook is disabled), ``not reached`` (no
connection was made: nothing is proven either way; it fails the run when the user
named that peer, ``--pg-dsn``), ``error`` (the probe itself failed), and
``skipped: <reason>`` (client not installed, no local peer, a prerequisite missing
here). Only what a peer received counts as proof: :func:`outcome` passes a run only
when at least one row reached its peer and none failed.
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
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..catalog import CATALOG, RUNTIMES

__all__ = ["ROWS", "Row", "Verdict", "carries", "default_pg_dsns", "outcome", "verify"]


class Row(NamedTuple):
    """One line of the table: which probe proves which integration (or launcher runtime).

    Distributions and carrier come from the catalog; ``distributions`` here overrides
    them for a probe of another client of the same integration (the SQLAlchemy dialect).
    """

    probe: str
    integration: str
    label: str
    #: a reason when verify has no local peer for this client (a tolerated skip)
    no_peer: Optional[str] = None
    own_distributions: Tuple[str, ...] = ()

    @property
    def runtime(self) -> bool:
        """A launcher runtime hook (node, java), proven by :mod:`ua_autotag.verify.runtimes`."""
        return self.integration in RUNTIMES

    @property
    def distributions(self) -> Tuple[str, ...]:
        if self.runtime:
            return ()
        return self.own_distributions or CATALOG[self.integration].distributions

    @property
    def carrier(self) -> str:
        if self.runtime:
            return _RUNTIME_CARRIERS[self.integration]
        return CATALOG[self.integration].carrier or "-"


#: what each runtime hook's proof reads (node: node-postgres reports application_name)
_RUNTIME_CARRIERS = {"node": "user_agent_entry", "java": "application_name"}

#: integrations verify cannot prove against a local peer, and why
_NO_PEER = {
    "sqlalchemy": "tags through the driver integrations (see their rows); pins only",
    "jaydebeapi": "needs a JDBC driver jar and a JVM; no local peer",
    "pyspark": "carries the value to Spark executors, where the other rows tag; proven on a "
    "real cluster by `nox -s sparkworkers`",
}

#: extra probes of an integration, after its own row
_EXTRA = {
    "databricks_sql": (
        Row("databricks_sqlalchemy", "databricks_sql", "databricks_sql (sqlalchemy)",
            own_distributions=("databricks-sqlalchemy",)),
    ),
}  # fmt: skip


def _rows() -> Tuple[Row, ...]:
    rows: List[Row] = []
    for name in CATALOG:
        rows.append(Row(name, name, name, no_peer=_NO_PEER.get(name)))
        rows.extend(_EXTRA.get(name, ()))
    rows.extend(Row(name, name, name) for name in RUNTIMES)
    return tuple(rows)


ROWS: Tuple[Row, ...] = _rows()


@dataclass
class Verdict:
    """The judged result of one row."""

    integration: str
    label: str
    client: Optional[str]
    version: Optional[str]
    carrier: str
    received: Optional[str]
    verdict: str  # ok | missing | not reached | error | skipped: <reason>
    detail: str = ""
    #: the row does not fail the run (ok, skipped, not reached a peer nobody named)
    passed: bool = False
    seconds: float = 0.0
    #: a connection reached the peer, so what it received is evidence (ok, missing)
    reached: bool = False


_TOKEN_SPLIT = re.compile(r"[\s();,=\[\]{}\"']+")


def carries(received: Optional[str], value: str) -> bool:
    """Whether ``received`` holds ``value`` as a whole token (not ``.../3.55`` for ``/3.5``)."""
    if not received:
        return False
    return value in _TOKEN_SPLIT.split(received)


def _installed(row: Row) -> Tuple[Optional[str], Optional[str]]:
    """(client, version) of the first installed distribution; a runtime: (its binary, "")."""
    if row.runtime:
        import shutil

        binary = shutil.which(row.integration)
        return (binary, "") if binary else (None, None)
    from importlib import metadata

    for dist in row.distributions:
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
    from ..scrub import scrub

    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = tail[-1] if tail else f"exit status {proc.returncode}"
    return {"error": scrub(f"probe crashed: {last}")}


def _pg_params(dsn: str, environ: Dict[str, str]) -> Dict[str, Any]:
    """host/port/user/dbname(/password) of ``dsn`` for the runtime proofs (libpq defaults)."""
    from .probes import parse_dsn

    params = parse_dsn(dsn)

    def get(key: str, var: str, default: str) -> str:
        return (params.get(key) or environ.get(var) or default).split(",")[0]

    out: Dict[str, Any] = {
        "host": get("host", "PGHOST", "127.0.0.1"),
        "port": int(get("port", "PGPORT", "5432")),
        "user": get("user", "PGUSER", "postgres"),
        "dbname": get("dbname", "PGDATABASE", "postgres"),
    }
    password = params.get("password") or environ.get("PGPASSWORD")
    if password:
        out["password"] = password
    return out


def _run_runtime(
    row: Row, job: Dict[str, Any], environ: Dict[str, str], timeout: float
) -> Dict[str, Any]:
    from .runtimes import verify_java, verify_node

    pg = _pg_params(job["pg_dsns"][0], environ)
    if row.integration == "node":
        return verify_node(job["user_agent"], timeout, **pg)
    return verify_java(job["user_agent"], timeout, **pg)


def _judge(
    row: Row,
    value: str,
    result: Dict[str, Any],
    client: Optional[str],
    version: Optional[str],
    disabled: Sequence[str],
    job_explicit: bool = False,
) -> Verdict:
    verdict = Verdict(
        row.integration,
        row.label,
        result.get("client") or client,
        result.get("version") or version,
        row.carrier,
        result.get("received"),
        "",
    )
    if result.get("client") == "pg":  # node-postgres, through PGAPPNAME
        verdict.carrier = "application_name"
    if "skip" in result:  # a prerequisite is missing here: not proven, not failed
        verdict.verdict, verdict.detail = f"skipped: {result['skip']}", result["skip"]
        verdict.passed = True
    elif "unreached" in result:  # no connection: no evidence either way
        verdict.verdict, verdict.detail = "not reached", result["unreached"]
        verdict.passed = not job_explicit
    elif "error" in result:
        verdict.verdict = "error"
        verdict.detail = "; ".join(filter(None, [result["error"], _why(result)]))
    elif carries(verdict.received, value):
        verdict.verdict, verdict.passed, verdict.reached = "ok", True, True
        verdict.detail = result.get("where", "")
    else:
        verdict.verdict, verdict.reached = "missing", True
        hints = [f"not in {result.get('where', 'what the peer received')}"]
        off = row.integration in disabled or "all" in disabled
        hints.append("disabled by UA_AUTOTAG_DISABLED_INTEGRATIONS" if off else _why(result))
        verdict.detail = "; ".join(filter(None, hints))
    return verdict


def _why(result: Dict[str, Any]) -> str:
    status = result.get("status") or {}
    state = status.get("state")
    if not state:
        return ""
    return f"ua_autotag status: {state}" + (
        f" ({status['reason']})" if status.get("reason") else ""
    )


def _settled(row: Row, disabled: Sequence[str]) -> Optional[Verdict]:
    """The verdict of a row that needs no probe (not installed, no peer, hook disabled)."""
    client, version = _installed(row)
    base = Verdict(row.integration, row.label, client, version, row.carrier, None, "")
    if version is None:
        what = "not on PATH" if row.runtime else "not installed"
        base.verdict, base.passed = f"skipped: {what}", True
        base.detail = row.integration if row.runtime else " / ".join(row.distributions)
    elif row.no_peer:
        base.verdict, base.detail, base.passed = f"skipped: {row.no_peer}", row.no_peer, True
    elif row.runtime and (row.integration in disabled or "all" in disabled):
        base.verdict = "missing"
        base.detail = (
            f"disabled by UA_AUTOTAG_DISABLED_INTEGRATIONS: `ua-autotag run` adds "
            f"no {row.integration} hook"
        )
    else:
        return None
    return base


def _disabled(env: Dict[str, str]) -> List[str]:
    raw = env.get("UA_AUTOTAG_DISABLED_INTEGRATIONS", "")
    return [d.strip().lower() for d in raw.split(",") if d.strip()]


def verify(
    value: str,
    *,
    pg_dsns: Optional[List[str]] = None,
    only: Optional[Sequence[str]] = None,
    timeout: float = 120.0,
    environ: Optional[Dict[str, str]] = None,
    workers: Optional[int] = None,
) -> List[Verdict]:
    """Probe every installed client with ``value``; one :class:`Verdict` per row.

    ``pg_dsns`` given means the user named the server: unreachable is then an error
    of the PostgreSQL rows, not a skip.
    """
    env = dict(os.environ if environ is None else environ)
    disabled = _disabled(env)
    job = {
        "user_agent": value,
        "pg_dsns": pg_dsns or default_pg_dsns(env),
        "pg_explicit": bool(pg_dsns),
    }
    rows = [r for r in ROWS if not only or r.integration in only or r.probe in only]
    verdicts = {r.probe: v for r in rows for v in [_settled(r, disabled)] if v is not None}

    def one(row: Row) -> Verdict:
        start = time.monotonic()
        client, version = _installed(row)
        run = _run_runtime if row.runtime else _run_probe
        result = run(row, job, env, timeout)
        verdict = _judge(row, value, result, client, version, disabled, bool(pg_dsns))
        verdict.seconds = round(time.monotonic() - start, 2)
        return verdict

    todo = [r for r in rows if r.probe not in verdicts]
    n = workers or max(2, min(4, os.cpu_count() or 2))  # probes are CPU-bound imports
    with ThreadPoolExecutor(max_workers=n) as pool:
        verdicts.update((row.probe, v) for row, v in zip(todo, pool.map(one, todo)))
    return [verdicts[r.probe] for r in rows]


def outcome(verdicts: Sequence[Verdict]) -> Tuple[bool, str]:
    """(passed, why): a run passes only when a peer received something and no row failed.

    Skipped and not-reached rows prove nothing: a run made only of them does not pass.
    """
    failed = [v for v in verdicts if not v.passed]
    reached = [v for v in verdicts if v.reached]
    if failed:
        return False, "failed: " + ", ".join(f"{v.label} ({v.verdict})" for v in failed)
    if not reached:
        return False, "nothing proven: no row reached its peer"
    return True, f"{len(reached)} of {len(verdicts)} rows reached their peer and carried the value"
