"""The real-client proofs behind :func:`ua_autotag.runtimes.verify_node` / ``verify_java``.

Each one builds the child's environment with ``child_environment`` (the launcher's own
code path), runs an unmodified client program in that environment, and reports what
the peer, not the program, says it received.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Optional

from . import _one_line, child_environment

_HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SCRIPT = os.path.join(_HERE, "node", "verify.cjs")
JAVA_PROBE = os.path.join(_HERE, "java", "UaAutotagProbe.java")
HTTP_PATH = "/sql/1.0/warehouses/ua-autotag-verify"


def _pg_env(env: dict[str, str], host: str, port: int, user: str, dbname: str,
            password: Optional[str]) -> None:  # fmt: skip
    env.update(PGHOST=host, PGPORT=str(port), PGUSER=user, PGDATABASE=dbname)
    if password is not None:
        env["PGPASSWORD"] = password
    else:
        env.pop("PGPASSWORD", None)


def _last_json(stdout: str) -> Optional[dict[str, Any]]:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def verify_node(value: str, timeout: float, mode: str, cwd: Optional[str], host: str,
                port: int, user: str, dbname: str,
                password: Optional[str]) -> dict[str, Any]:  # fmt: skip
    node = shutil.which("node")
    if node is None:
        return {"skip": "node not on PATH"}
    env = dict(os.environ)
    warnings = child_environment(env, value, mode, disabled=("java",))
    if warnings:
        return {"error": warnings[0]}
    # node-postgres reads PGAPPNAME: set it the way the launcher exports it
    env["PGAPPNAME"] = value
    _pg_env(env, host, port, user, dbname, password)

    from ._peer import NoCertificate, TlsHeaderRecorder

    peer: Optional[TlsHeaderRecorder] = TlsHeaderRecorder()
    try:
        assert peer is not None
        peer.start()
    except (NoCertificate, OSError, subprocess.SubprocessError):
        peer = None  # no HTTPS recorder: only the PostgreSQL path can be tried
    try:
        args = [node, NODE_SCRIPT, str(peer.port if peer else 0)]
        timed_out = False
        try:
            proc = subprocess.run(
                args, cwd=cwd or os.getcwd(), env=env, capture_output=True, text=True,
                timeout=timeout, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            timed_out = True
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        report = _last_json(stdout) or {}
        requests = peer.snapshot() if peer else []
    finally:
        if peer is not None:
            peer.stop()

    if requests:  # the driver reached the recorder: its header is the answer
        first = next((r for r in requests if r.path == HTTP_PATH), requests[0])
        version = report.get("version")
        return {
            "received": first.user_agent or "",
            "where": f"HTTPS recorder 127.0.0.1: {first.method} {first.path} User-Agent "
            f"(@databricks/sql {version or '?'})",
            "client": "@databricks/sql",
            "version": version,
        }
    if "received" in report:
        return {
            "received": report["received"],
            "where": f"PostgreSQL {host}:{port} pg_stat_activity.application_name "
            f"(node-postgres {report.get('version') or '?'} via PGAPPNAME)",
            "client": "pg",
            "version": report.get("version"),
        }
    if "skip" in report:
        return {"skip": str(report["skip"])}
    if timed_out:
        return {"error": f"node did not finish within {timeout:g} s"}
    detail = report.get("error") or _one_line(stderr)[-300:] or "no output"
    return {"error": f"node: {detail}"}


def verify_java(value: str, timeout: float, host: str, port: int, user: str, dbname: str,
                password: Optional[str], jar: str) -> dict[str, Any]:  # fmt: skip
    java = shutil.which("java")
    if java is None:
        return {"skip": "java not on PATH"}
    if not os.path.isfile(jar):
        return {"skip": f"pgjdbc not found at {jar} (Debian: libpostgresql-jdbc-java)"}
    env = dict(os.environ)
    warnings = child_environment(env, value, "append", disabled=("node",))
    if warnings:
        return {"error": warnings[0]}
    env["UA_AUTOTAG_PROBE_USER"] = user
    if password is not None:
        env["PGPASSWORD"] = password
    else:
        env.pop("PGPASSWORD", None)
    netloc = f"[{host}]" if ":" in host else host
    url = f"jdbc:postgresql://{netloc}:{port}/{dbname}"
    try:
        proc = subprocess.run(
            [java, "-cp", jar, JAVA_PROBE, url], env=env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"java did not finish within {timeout:g} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("application_name="):
            return {
                "received": line[len("application_name=") :],
                "where": f"PostgreSQL {host}:{port} pg_stat_activity.application_name "
                "(pgjdbc DriverManager, no ApplicationName in the program)",
                "client": "pgjdbc",
            }
    if "jdk.compiler" in proc.stderr:
        return {"skip": "java here cannot run source files (needs a JDK, not only a JRE)"}
    noise = "Picked up JAVA_TOOL_OPTIONS"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and noise not in ln]
    return {"error": f"java exited {proc.returncode}: {_one_line(' '.join(lines[:3]))[:300]}"}
