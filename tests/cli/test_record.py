"""``ua-autotag record``: local endpoints print what a partner's own code sends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any, Dict, List

from tests.cli.conftest import SCRIPT, UA, clean_env, cli, one_line_error

CHILD = """\
import sys, time
import psycopg, requests
requests.get(sys.argv[1] + "/api/2.0/clusters/list?token=dapi0123456789abcdef0123456789ab")
with psycopg.connect(sys.argv[2]) as conn:
    print(conn.info.backend_pid, flush=True)  # the shared server has other clients too
    time.sleep(1.0)  # long enough for the watcher's poll to see it
"""


def _events(proc: subprocess.Popen, want: Any, timeout: float = 60) -> List[Dict[str, Any]]:
    """Read JSON lines from ``proc`` until ``want(events)`` holds."""
    assert proc.stdout is not None
    events: List[Dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not want(events):
        assert time.monotonic() < deadline, events
        line = proc.stdout.readline()
        assert line, f"record ended early: {events}"
        events.append(json.loads(line))
    return events


def test_record_prints_what_each_connection_carried(pg_dsn: str) -> None:
    proc = subprocess.Popen(
        [SCRIPT, "record", "--json", "--pg-dsn", pg_dsn, "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        listening = _events(proc, lambda ev: len(ev) == 2)
        assert [e["peer"] for e in listening] == ["http", "postgresql"]
        url = listening[0]["url"]
        assert url.startswith("http://127.0.0.1:")
        child = subprocess.run(
            [SCRIPT, "run", "--user-agent", UA, "--rest-hosts", "127.0.0.1", "--",
             sys.executable, "-c", CHILD, url, pg_dsn],
            env=clean_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        pid = int(child.stdout.split()[-1])

        def both(events: List[Dict[str, Any]]) -> bool:
            return any(e["peer"] == "http" and not e.get("listening") for e in events) and any(
                e.get("pid") == pid for e in events
            )

        events = [e for e in _events(proc, both) if not e.get("listening")]
        http = next(e for e in events if e["peer"] == "http")
        assert http["path"] == "/api/2.0/clusters/list" and http["method"] == "GET"
        assert http["user_agent"].split()[-1] == UA
        pg = next(e for e in events if e.get("pid") == pid)
        assert pg["peer"] == "postgresql" and pg["application_name"] == UA
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "dapi0123456789abcdef" not in out + err  # the query string never shown


def test_record_needs_something_to_record_and_a_reachable_server() -> None:
    line = one_line_error(cli("record", "--no-http"))
    assert "nothing to record" in line
    line = one_line_error(cli("record", "--pg-dsn", "host=127.0.0.1 port=1 password=s3cret"))
    assert "--pg-dsn: cannot connect" in line and "s3cret" not in line
