"""``ua-autotag verify`` for the launcher's Node.js and Java hooks (:mod:`ua_autotag.runtimes`).

Each proof builds the child's environment with ``child_environment`` (the launcher's own
code path), runs an unmodified client program in that environment (``node_probe.cjs``,
``UaAutotagProbe.java``, beside this module), and reports what the peer, not the
program, says it received: ``{"received", "where", "client"...}``, ``{"skip": reason}``
or ``{"error": reason}``; they never raise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any, Optional

from ..cli.common import one_line
from ..runtimes import child_environment

__all__ = ["PGJDBC_JAR", "verify_java", "verify_node"]

_HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SCRIPT = os.path.join(_HERE, "node_probe.cjs")
JAVA_PROBE = os.path.join(_HERE, "UaAutotagProbe.java")
#: Debian's libpostgresql-jdbc-java
PGJDBC_JAR = "/usr/share/java/postgresql.jar"
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


def _verify_node(value: str, timeout: float, mode: str, cwd: Optional[str], host: str,
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

    from .tls_peer import NoCertificate, TlsHeaderRecorder

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
    last = [ln for ln in stderr.splitlines() if ln.strip()][-1:]  # whole lines, never cut
    detail = report.get("error") or one_line(" ".join(last)) or "no output"
    return {"error": f"node: {detail}"}


def _verify_java(value: str, timeout: float, host: str, port: int, user: str, dbname: str,
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
    return {"error": f"java exited {proc.returncode}: {one_line(' '.join(lines[:3]))}"}


def verify_node(
    value: str,
    timeout: float = 60.0,
    *,
    mode: str = "append",
    cwd: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    dbname: str = "postgres",
    password: Optional[str] = None,
) -> dict[str, Any]:
    """Run a real Node.js client with the hook and report what its peer received.

    ``@databricks/sql`` (resolved from ``cwd``, then ``NODE_PATH``) against a local HTTPS
    recorder; else ``pg`` against PostgreSQL (through ``PGAPPNAME``, as the launcher
    exports it); else ``{"skip": reason}``.
    """
    try:
        return _verify_node(value, timeout, mode, cwd, host, port, user, dbname, password)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {one_line(str(exc))}"}


def verify_java(
    value: str,
    timeout: float = 60.0,
    *,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    dbname: str = "postgres",
    password: Optional[str] = None,
    jar: str = PGJDBC_JAR,
) -> dict[str, Any]:
    """Run an unmodified pgjdbc program with the hook; report the server's application_name.

    ``{"skip": reason}`` without ``java``, a JDK's source launcher, or the pgjdbc jar.
    """
    try:
        return _verify_java(value, timeout, host, port, user, dbname, password, jar)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {one_line(str(exc))}"}
