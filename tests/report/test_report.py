"""The connection report: real clients, real peers, each application in its own interpreter
(the report's audit hook cannot be removed from a process, so never from pytest's).

What the peers received backs each row: the HTTP recorder (127.0.0.1, listed as a
Databricks host) saw our value from ``requests`` and none from ``http.client``; the
server's ``pg_stat_activity`` has it for psycopg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests import pg
from ua_autotag.verify.http_peer import HeaderRecorder

UA = "AcmePartner_DatEngProduct/3.5"
SECRET = "s3kr1t-never-printed"
TIMEOUT = 120

# An application that knows nothing of the report: a REST call through requests (tagged),
# one through http.client (no integration: untagged), a psycopg connection (tagged, libpq:
# no Python socket), with credentials in the URL, the DSN and a header.
APP = textwrap.dedent(
    """
    import http.client, sys
    import psycopg, requests

    port, dsn, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    requests.get(f"http://user:{secret}@127.0.0.1:{port}/api/2.0/clusters/list")
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/api/2.0/jobs/list", headers={"Authorization": "Bearer " + secret})  # HERE
    conn.getresponse().read()
    with psycopg.connect(dsn + " password=" + secret) as pgc:
        print("pg:" + pgc.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()[0])
    """
)

# the same, with the report asked for in code (what a partner's test suite does)
IN_CODE = textwrap.dedent(
    """
    import json, sys
    import ua_autotag
    ua_autotag.instrument(sys.argv[4], rest_hosts=["127.0.0.1"])
    report = ua_autotag.report(format=sys.argv[5] if sys.argv[5] != "none" else None)
    sys.argv = sys.argv[:4]
    exec(compile(open(sys.argv[0].replace("in_code.py", "app.py")).read(), "APP", "exec"))
    print("REPORT=" + json.dumps(report.as_dict()))
    print("COUNTS=%d,%d" % (report.tagged, report.untagged))
    """
)


def _env(**extra: str) -> Dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UA_AUTOTAG_") and k not in ("PGAPPNAME", "DATABRICKS_HOST")
    }
    env.update(extra)
    return env


def _write_app(directory: Path) -> Path:
    app = directory / "app.py"
    app.write_text(APP)
    (directory / "in_code.py").write_text(IN_CODE)
    return app


def _line_of(path: Path, marker: str) -> int:
    (line,) = [i for i, text in enumerate(path.read_text().splitlines(), 1) if marker in text]
    return line


def _rows(report: Dict[str, Any], status: str) -> List[Dict[str, Any]]:
    return [r for r in report["connections"] if r["status"] == status]


def _run(command: List[str], env: Dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _peer_agents(peer: HeaderRecorder) -> Dict[str, str]:
    return {r.path: r.user_agent or "" for r in peer.snapshot()}


def test_report_from_code_lists_tagged_and_untagged(
    tmp_path: Path, pg_dsn: str, http_peer: HeaderRecorder
) -> None:
    app = _write_app(tmp_path)
    code = str(tmp_path / "in_code.py")
    proc = _run([sys.executable, code, str(http_peer.port), pg_dsn, SECRET, UA, "none"], _env())
    report = json.loads(proc.stdout.split("REPORT=", 1)[1].splitlines()[0])
    # the peers: requests carried the value, http.client did not, PostgreSQL has it
    agents = _peer_agents(http_peer)
    assert UA in agents["/api/2.0/clusters/list"]
    assert UA not in agents["/api/2.0/jobs/list"]
    assert f"pg:{UA}" in proc.stdout
    # the report says the same
    (untagged,) = _rows(report, "untagged")
    line = _line_of(app, "# HERE")
    assert untagged["client"] == "http.client"
    assert untagged["location"] == f"APP:{line}"  # the file:line of conn.request(...)
    assert (untagged["endpoint_kind"], untagged["host"]) == ("databricks", "127.0.0.1")
    assert untagged["port"] == http_peer.port and untagged["value"] is None
    tagged = {r["client"]: r for r in _rows(report, "tagged")}
    assert set(tagged) == {"requests", "psycopg"}, report
    assert tagged["requests"]["value"] == UA and tagged["requests"]["port"] == http_peer.port
    assert tagged["psycopg"]["value"] == UA
    assert tagged["psycopg"]["endpoint_kind"] == "postgresql"
    assert (tagged["psycopg"]["host"], tagged["psycopg"]["port"]) == (pg.HOST, pg.PORT)
    assert tagged["psycopg"]["product"] == "AcmePartner_DatEngProduct"
    assert (report["tagged"], report["untagged"]) == (2, 1)
    assert "COUNTS=2,1" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_report_printed_at_exit_never_shows_a_secret(
    tmp_path: Path, pg_dsn: str, http_peer: HeaderRecorder, fmt: str
) -> None:
    _write_app(tmp_path)
    code = str(tmp_path / "in_code.py")
    proc = _run([sys.executable, code, str(http_peer.port), pg_dsn, SECRET, UA, fmt], _env())
    printed = proc.stderr
    if fmt == "json":
        data = json.loads(printed)
        assert (data["tagged"], data["untagged"]) == (2, 1)
    else:
        assert "2 tagged, 1 untagged" in printed
        assert "http.client" in printed and "opened at APP:" in printed
        assert "libpq" in printed  # the note on clients outside Python's sockets
    assert SECRET not in printed + proc.stdout


def test_launcher_report_covers_child_processes(
    tmp_path: Path, pg_dsn: str, http_peer: HeaderRecorder
) -> None:
    """``ua-autotag run --report``: the program's own connections and its Python child's,
    merged; ``--fail-on-untagged`` turns the untagged one into exit status 3."""
    app = _write_app(tmp_path)
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, *sys.argv[1:]], check=True)\n"
    )
    launcher = [sys.executable, "-m", "ua_autotag", "run", "--user-agent", UA,
                "--rest-hosts", "127.0.0.1"]  # fmt: skip
    program = [sys.executable, str(parent), str(app), str(http_peer.port), pg_dsn, SECRET]
    proc = _run([*launcher, "--report", "--fail-on-untagged", "--", *program], _env(), ok=False)
    assert proc.returncode == 3, proc.stderr
    assert "2 tagged, 1 untagged" in proc.stderr
    assert f"opened at {app}:{_line_of(app, '# HERE')}" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    # JSON into a file; without --fail-on-untagged the program's own status stands
    out = tmp_path / "report.json"
    proc = _run([*launcher, "--report=json", "--report-file", str(out), "--", *program], _env())
    data = json.loads(out.read_text())
    assert (data["tagged"], data["untagged"]) == (2, 1)
    assert {r["client"] for r in _rows(data, "tagged")} == {"requests", "psycopg"}
    assert "ua-autotag report" not in proc.stderr


def test_report_costs_nothing_unless_asked_and_can_be_stopped(http_peer: HeaderRecorder) -> None:
    code = textwrap.dedent(
        """
        import http.client, sys
        import ua_autotag
        ua_autotag.instrument(sys.argv[2], rest_hosts=["127.0.0.1"])
        import requests
        from ua_autotag.engine import wrapper
        assert "ua_autotag.ledger" not in sys.modules and not wrapper._REPORTING

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
            conn.request("GET", "/x"); conn.getresponse().read(); conn.close()

        report = ua_autotag.report(format=None)
        assert wrapper._REPORTING
        get()
        assert report.untagged == 1, report.rows()
        ua_autotag.report(enabled=False)
        assert not wrapper._REPORTING
        get()
        assert report.untagged == 1, report.rows()
        print("ok")
        """
    )
    proc = _run([sys.executable, "-c", code, str(http_peer.port), UA], _env())
    assert proc.stdout.strip() == "ok", proc.stderr


def test_bad_report_options_are_one_line_errors() -> None:
    proc = _run([sys.executable, "-m", "ua_autotag", "run", "--user-agent", UA,
                 "--report-file", "x.json", "--", "true"], _env(), ok=False)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "--report-file and --fail-on-untagged need --report (or --report=json)"
    )
    proc = _run([sys.executable, "-c", "import ua_autotag; ua_autotag.report('yaml')"], _env(),
                ok=False)  # fmt: skip
    assert "report format must be 'text' or 'json', got 'yaml'" in proc.stderr


def test_aiohttp_connection_opened_before_the_tagging_layer_is_tagged(
    http_peer: HeaderRecorder,
) -> None:
    """aiohttp opens the connection before ``ClientRequest.send`` (the layer that tags the
    request) runs: the report still lists it as tagged, and a raw asyncio connection to
    the same host as untagged."""
    code = textwrap.dedent(
        """
        import asyncio, json, sys
        import ua_autotag
        ua_autotag.instrument(sys.argv[2], rest_hosts=["127.0.0.1"])
        report = ua_autotag.report(format=None)
        import aiohttp
        port = int(sys.argv[1])

        async def main():
            async with aiohttp.ClientSession() as session:
                for _ in range(2):  # the second request reuses the connection
                    async with session.get(f"http://127.0.0.1:{port}/api/2.1/unity-catalog/x") as r:
                        await r.read()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # RAW
            writer.close()

        asyncio.run(main())
        print(json.dumps(report.as_dict()))
        """
    )
    proc = _run([sys.executable, "-c", code, str(http_peer.port), UA], _env())
    report = json.loads(proc.stdout)
    agents = [r.user_agent or "" for r in http_peer.snapshot()]
    assert len(agents) == 2 and all(UA in a for a in agents), agents
    (tagged,) = _rows(report, "tagged")
    assert (tagged["client"], tagged["value"], tagged["count"]) == ("aiohttp", UA, 1)
    (untagged,) = _rows(report, "untagged")
    assert untagged["client"] == "asyncio.streams" and untagged["count"] == 1
    assert untagged["location"].startswith("<string>:")


def test_report_written_to_a_file_at_exit(tmp_path: Path, http_peer: HeaderRecorder) -> None:
    out = tmp_path / "report.json"
    code = (
        "import http.client, sys, ua_autotag\n"
        "ua_autotag.report('json', file=sys.argv[2])\n"
        "c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
        "c.request('GET', '/x'); c.getresponse().read()\n"
    )
    env = _env(UA_AUTOTAG_REST_HOSTS="127.0.0.1")  # nothing instrumented: the env's hosts
    proc = _run([sys.executable, "-c", code, str(http_peer.port), str(out)], env)
    assert proc.stderr == ""
    data = json.loads(out.read_text())
    (row,) = data["connections"]
    assert (row["status"], row["client"], row["product"]) == ("untagged", "http.client", "-")
    assert row["location"] == "<string>:4"


def test_threads_looking_up_different_names_for_one_port_are_told_apart() -> None:
    """Threads resolve a listed name (127.0.0.1) and an unlisted one (localhost) for the
    same port at once and connect: only the listed name's connections are rows, each
    with the line that opened it (the name a socket connects under is its own thread's
    look-up, not the last one of the process)."""
    code = textwrap.dedent(
        """
        import json, socket, threading
        import ua_autotag
        ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", rest_hosts=["127.0.0.1"])
        report = ua_autotag.report(format=None)
        server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        port = server.getsockname()[1]
        start = threading.Barrier(8)

        def work(name):
            start.wait()
            for _ in range(40):
                try:
                    socket.create_connection((name, port), timeout=5).close()  # OPEN
                except OSError:  # localhost as ::1 first: refused, then 127.0.0.1
                    pass

        threads = [threading.Thread(target=work, args=(n,)) for n in ["127.0.0.1", "localhost"] * 4]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(json.dumps(report.as_dict()))
        """
    )
    proc = _run([sys.executable, "-c", code], _env())
    report = json.loads(proc.stdout)
    (row,) = _rows(report, "untagged")
    assert (row["host"], row["count"]) == ("127.0.0.1", 4 * 40), report
    line = next(i for i, t in enumerate(code.splitlines(), 1) if "# OPEN" in t)
    assert row["location"] == f"<string>:{line}"
    assert row["client"] == "?"  # socket.create_connection: the socket module is skipped


def test_host_rule_follows_the_registered_settings() -> None:
    """The report's host rule is made of what is registered: a host becomes a Databricks
    one when an ``instrument()`` lists it (and stops being one when it is dropped), for
    sockets opened after the change, with no look-up per connection to notice it."""
    code = textwrap.dedent(
        """
        import json, socket
        import ua_autotag
        ua_autotag.instrument("AcmePartner_DatEngProduct/3.5")
        report = ua_autotag.report(format=None)
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def connect(times):
            for _ in range(times):
                socket.create_connection(("127.0.0.1", port)).close()
                server.accept()[0].close()

        connect(2)  # 127.0.0.1 is no Databricks host yet: not listed
        ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", rest_hosts=["127.0.0.1"])
        connect(3)  # LISTED
        ua_autotag.instrument("AcmePartner_DatEngProduct/3.5")
        connect(5)  # dropped again: not listed
        print(json.dumps(report.as_dict()))
        """
    )
    proc = _run([sys.executable, "-c", code], _env())
    report = json.loads(proc.stdout)
    (row,) = _rows(report, "untagged")
    assert (row["host"], row["count"]) == ("127.0.0.1", 3), report
    assert report["untagged"] == 3 and report["tagged"] == 0
