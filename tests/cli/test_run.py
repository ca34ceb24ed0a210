"""``ua-autotag run`` and the one-liner, as a user runs them: real subprocesses, real peers.

What the peers received is the proof: ``pg_stat_activity.application_name`` read by
the launched program on its own connection, the User-Agent header recorded by the
local HTTP peer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import pg
from tests.cli.conftest import SCRIPT, UA, clean_env, cli, one_line_error
from ua_autotag.bootstrap import DIRECTORY
from ua_autotag.catalog import CATALOG

ME_PATH = "/api/2.0/preview/scim/v2/Me"

APP_SCRIPT = textwrap.dedent(
    """
    import sys

    import psycopg
    from databricks.sdk import WorkspaceClient

    dsn, url = sys.argv[1], sys.argv[2]
    # an explicit application_name: libpq ignores PGAPPNAME then, so only the
    # instrumentation inside this process can add the tag
    with psycopg.connect(dsn, application_name="myscript") as conn:
        print("pg:" + conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()[0])
    WorkspaceClient(host=url, token="x").current_user.me()
    print("done")
    """
)


def _psql(*sql_args: str) -> list:
    return [
        "psql", "-X", "-h", pg.HOST, "-p", str(pg.PORT), "-U", pg.USER, "-d", pg.DBNAME,
        "-Atc", pg.APPLICATION_NAME_SQL, *sql_args,
    ]


@pytest.fixture
def sdk_peer(http_peer):  # type: ignore[no-untyped-def]
    http_peer.route("GET", ME_PATH, (200, {"id": "1", "userName": "me@example.invalid"}))
    return http_peer


@pytest.mark.parametrize("via_shell", [False, True], ids=["python", "sh -c python"])
def test_run_python_script_tags_postgres_and_sdk(
    tmp_path: Path, pg_dsn: str, sdk_peer, via_shell: bool  # type: ignore[no-untyped-def]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP_SCRIPT)
    command = [sys.executable, str(app), pg_dsn, sdk_peer.url]
    if via_shell:  # a non-Python parent: the Python grandchild is instrumented all the same
        command = ["sh", "-c", " ".join(f"'{c}'" for c in command)]
    proc = cli("run", "--user-agent", UA, "--", *command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pg:myscript " + UA in proc.stdout.splitlines()
    agents = sdk_peer.user_agents(ME_PATH)
    assert agents and UA in agents[-1].split(), agents


def test_run_isv_product_version_options(pg_dsn: str) -> None:
    code = (
        "import sys, psycopg; c = psycopg.connect(sys.argv[1]); "
        f"print(c.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0])"
    )
    proc = cli("run", "--isv", "AcmePartner", "--product", "DatEngProduct", "--version", "3.5",
               sys.executable, "-c", code, pg_dsn)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == UA


def test_run_psql_is_tagged_in_pg_stat_activity(pg_dsn: str) -> None:
    proc = cli("run", "--user-agent", UA, *_psql())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == UA


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("append", "legacy-app " + UA), ("replace", UA), ("keep", "legacy-app")],
)
def test_run_psql_merges_an_existing_pgappname(pg_dsn: str, mode: str, expected: str) -> None:
    proc = cli("run", "--user-agent", UA, "--mode", mode, *_psql(),
               env=clean_env(PGAPPNAME="legacy-app"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_run_exports_spark_connect_user_agent_merged() -> None:
    code = "import os; print(os.environ['SPARK_CONNECT_USER_AGENT'])"
    proc = cli("run", "--user-agent", UA, sys.executable, "-c", code,
               env=clean_env(SPARK_CONNECT_USER_AGENT="their_tool"))
    assert proc.stdout.strip() == "their_tool " + UA


def test_exit_code_stdin_and_pid_pass_through() -> None:
    code = "import os, sys; print(os.getpid()); print(sys.stdin.read().upper()); sys.exit(7)"
    child = subprocess.Popen(
        [SCRIPT, "run", "--user-agent", UA, sys.executable, "-c", code],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(),
    )
    out, err = child.communicate("hello from stdin", timeout=60)
    assert child.returncode == 7, err
    pid, text = out.splitlines()[:2]
    assert int(pid) == child.pid  # exec'd: the program *is* the launched process
    assert text == "HELLO FROM STDIN"


def test_signals_pass_through() -> None:
    code = (
        "import os, signal, sys, time\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([SCRIPT, "run", "--user-agent", UA, sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True, env=clean_env())
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM


def test_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import os\nos.environ['THEIR_SITECUSTOMIZE_RAN'] = 'yes'\n"
    )
    code = textwrap.dedent(
        """
        import os, sys, sitecustomize, ua_autotag
        print(os.environ.get('THEIR_SITECUSTOMIZE_RAN'))
        print(sitecustomize.__file__)
        print(ua_autotag.is_instrumented())
        print(sys.path.count(sys.argv[1]))
        """
    )
    proc = cli("run", "--user-agent", UA, sys.executable, "-c", code, DIRECTORY,
               env=clean_env(PYTHONPATH=str(theirs)))
    assert proc.returncode == 0, proc.stderr
    ran, module_file, instrumented, ours_on_path = proc.stdout.split()
    assert ran == "yes"
    assert Path(module_file) == theirs / "sitecustomize.py"
    assert instrumented == "True"
    assert ours_on_path == "1"  # put back once, where it was


def test_no_sitecustomize_to_chain_to_is_fine() -> None:
    proc = cli("run", "--user-agent", UA, sys.executable, "-c",
               "import ua_autotag; print(ua_autotag.is_instrumented())")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "True"
    assert proc.stderr == ""


def test_nested_launch_adds_nothing_twice() -> None:
    code = "import os; print(os.environ['PYTHONPATH']); print(os.environ['PGAPPNAME'])"
    proc = cli("run", "--user-agent", UA, SCRIPT, "run", "--user-agent", UA,
               sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    pythonpath, pgappname = proc.stdout.splitlines()
    assert pythonpath.split(os.pathsep) == [DIRECTORY]
    assert pgappname == UA


BAD_RUNS = {
    "bad value": (["--user-agent", "Acme Partner_X/1"], "whitespace"),
    "no underscore": (["--user-agent", "AcmePartner/1"], "'_'"),
    "crlf": (["--user-agent", "Acme_X/1\r\nX-Evil: 1"], "CR or LF"),
    "too long for application_name": (["--user-agent", "A_" + "x" * 70], "63-byte"),
    "bad mode": (["--user-agent", UA, "--mode", "merge"], "invalid choice"),
    "unknown integration": (["--user-agent", UA, "--disable", "psycopg4"], "psycopg4"),
    "isv without product": (["--isv", "AcmePartner"], "--product"),
    "both forms": (["--user-agent", UA, "--isv", "A"], "not both"),
    "no user agent": ([], "no User-Agent"),
    # bug: an empty value was answered "no User-Agent: give --user-agent"
    "empty user agent": (["--user-agent", ""], "--user-agent: must not be empty"),
    "unknown option": (["--user-agnet", UA], "--user-agnet"),
    "bad log level": (["--user-agent", UA, "--log-level", "LOUD"], "--log-level"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_option_fails_before_the_command_starts(tmp_path: Path, case: str) -> None:
    options, needle = BAD_RUNS[case]
    marker = tmp_path / "started"
    proc = cli("run", *options, sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert needle in line, line
    assert not marker.exists()


def test_bad_environment_value_fails_before_the_command_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    proc = cli("run", sys.executable, "-c", f"open({str(marker)!r}, 'w')",
               env=clean_env(UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_SPANS="maybe"))
    assert "UA_AUTOTAG_SPANS" in one_line_error(proc)
    assert not marker.exists()


def test_missing_command_is_a_clear_error() -> None:
    proc = cli("run", "--user-agent", UA, "no-such-program-ua-autotag")
    assert "command not found: 'no-such-program-ua-autotag'" in one_line_error(proc)
    assert proc.returncode == 127
    proc = cli("run", "--user-agent", UA)
    assert "no COMMAND" in one_line_error(proc)


def test_one_liner_tags_with_no_other_code(pg_dsn: str, sdk_peer) -> None:  # type: ignore[no-untyped-def]
    code = textwrap.dedent(
        f"""
        import sys
        import ua_autotag
        import psycopg
        from databricks.sdk import WorkspaceClient
        with psycopg.connect(sys.argv[1]) as conn:
            print(conn.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0])
        WorkspaceClient(host=sys.argv[2], token="x").current_user.me()
        """
    )
    proc = subprocess.run([sys.executable, "-c", code, pg_dsn, sdk_peer.url],
                          env=clean_env(UA_AUTOTAG_USER_AGENT=UA), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == UA
    assert UA in sdk_peer.user_agents(ME_PATH)[-1].split()


def test_bootstrap_never_stops_the_interpreter() -> None:
    """Strict mode + a bad value in the environment: one line on stderr, the program runs."""
    env = clean_env(PYTHONPATH=DIRECTORY, UA_AUTOTAG_USER_AGENT="bad value",
                    UA_AUTOTAG_STRICT="true")
    proc = subprocess.run([sys.executable, "-c", "print('alive')"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "alive"
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("ua-autotag: not instrumenting")


@pytest.mark.parametrize("sub", ["run", "verify", "doctor", "audit-sql", "install-pth",
                                 "uninstall-pth"])
def test_help_on_every_subcommand(sub: str) -> None:
    proc = cli(sub, "--help")
    assert proc.returncode == 0
    assert f"usage: ua-autotag {sub}" in proc.stdout


def test_version() -> None:
    import ua_autotag

    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ua-autotag {ua_autotag.__version__}"


def test_no_subcommand_is_a_one_line_error() -> None:
    assert "a command is required" in one_line_error(cli())


def test_importing_the_cli_is_cheap() -> None:
    code = ("import sys, ua_autotag.cli; "
            "print(sorted(m for m in ('wrapt', 'opentelemetry', 'psycopg', 'databricks', "
            "'ua_autotag.engine.patcher', 'ua_autotag.verify.runner', 'ua_autotag.runtimes') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_run_python_dash_m(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys, ua_autotag\nprint(ua_autotag.is_instrumented(), sys.argv[1:])\n"
    )
    proc = cli("run", "--user-agent", UA, sys.executable, "-m", "mypkg", "--flag", "x",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True ['--flag', 'x']"


def test_disable_all_exports_no_env_carriers() -> None:
    code = (
        "import os; "
        "print(os.environ.get('PGAPPNAME'), os.environ.get('SPARK_CONNECT_USER_AGENT'))"
    )
    proc = cli("run", "--user-agent", UA, "--disable", "all", sys.executable, "-c", code)
    assert proc.stdout.strip() == "None None"
    proc = cli("run", "--user-agent", UA, "--disable", "psycopg", sys.executable, "-c", code)
    assert proc.stdout.strip() == f"None {UA}"  # PGAPPNAME would tag psycopg behind its back


def test_empty_user_agent_names_the_rule_not_a_missing_value() -> None:
    """Bug: ``--user-agent ""`` answered "no User-Agent: give --user-agent"."""
    line = one_line_error(cli("run", "--user-agent", "", "true"))
    assert "--user-agent" in line and "must not be empty" in line, line
    assert "no User-Agent" not in line
    assert "<isv>_<product>" in line  # the rule


LONG_UA = "AcmePartner_" + "D" * 60 + "/3.5"  # 76 bytes: over application_name's 63
#: every integration carrying application_name (the 63-byte limit)
POSTGRES = tuple(n for n, e in CATALOG.items() if e.carrier == "application_name")


def test_63_byte_error_names_the_option_and_the_way_out(tmp_path: Path) -> None:
    """The 63-byte error names --user-agent (not the variable it used to become) and the
    PostgreSQL integrations whose disabling lifts the limit."""
    line = one_line_error(cli("run", "--user-agent", LONG_UA, "true"))
    assert line.startswith("ua-autotag run: error: --user-agent: "), line
    assert "63-byte" in line
    assert all(name in line for name in POSTGRES), line
    assert "--disable" in line
    # and it does: with them disabled the value is accepted, and PGAPPNAME left alone
    code = "import os; print(os.environ['UA_AUTOTAG_USER_AGENT'], os.environ.get('PGAPPNAME'))"
    proc = cli("run", "--user-agent", LONG_UA, "--disable", ",".join(POSTGRES),
               sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [LONG_UA, "None"]


ENV_CODE = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith(('UA_AUTOTAG_', 'NODE_OPTIONS', 'JAVA_TOOL_OPTIONS', 'PGAPPNAME', "
    "'SPARK_CONNECT_USER_AGENT'))}))"
)


def _child_env(*options: str, **env: str) -> dict:
    import json

    proc = cli("run", *options, sys.executable, "-c", ENV_CODE, env=clean_env(**env))
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_child_environment_is_written_from_the_resolved_settings(tmp_path: Path) -> None:
    child = _child_env(
        "--isv", "AcmePartner", "--product", "DatEngProduct", "--version", "3.5",
        "--mode", "replace", "--no-spans", "--rest-hosts", "H.example.com",
        UA_AUTOTAG_ISV="Old", UA_AUTOTAG_PRODUCT="Stale", UA_AUTOTAG_VERSION_FROM="pip",
        UA_AUTOTAG_DISABLED_INTEGRATIONS="asyncpg", UA_AUTOTAG_CACHE_DIR=str(tmp_path),
    )
    assert child["UA_AUTOTAG_USER_AGENT"] == UA
    for gone in ("UA_AUTOTAG_ISV", "UA_AUTOTAG_PRODUCT", "UA_AUTOTAG_VERSION",
                 "UA_AUTOTAG_VERSION_FROM"):
        assert gone not in child
    assert child["UA_AUTOTAG_MODE"] == "replace"
    assert child["UA_AUTOTAG_SPANS"] == "false"
    assert child["UA_AUTOTAG_STRICT"] == "false"
    assert child["UA_AUTOTAG_DISABLED_INTEGRATIONS"] == "asyncpg"
    assert child["UA_AUTOTAG_REST_HOSTS"] == "h.example.com"
    assert child["PGAPPNAME"] == UA


def test_child_resolves_to_the_same_settings(tmp_path: Path) -> None:
    code = (
        "import ua_autotag; s = ua_autotag.status().default; "
        "print(s.user_agent, s.mode)"
    )
    proc = cli("run", "--isv", "AcmePartner", "--product", "DatEngProduct", "--version", "3.5",
               "--mode", "keep", sys.executable, "-c", code,
               env=clean_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [UA, "keep"]


def test_runtime_hooks_are_added_and_disable_turns_them_off(tmp_path: Path) -> None:
    from ua_autotag.runtimes.node import PRELOAD

    child = _child_env("--user-agent", UA, UA_AUTOTAG_CACHE_DIR=str(tmp_path))
    assert PRELOAD in child["NODE_OPTIONS"]
    assert child["JAVA_TOOL_OPTIONS"].startswith(f"-Xbootclasspath/a:{tmp_path}")
    child = _child_env("--user-agent", UA, "--disable", "node,java",
                       UA_AUTOTAG_CACHE_DIR=str(tmp_path))
    assert "NODE_OPTIONS" not in child and "JAVA_TOOL_OPTIONS" not in child
    assert child["UA_AUTOTAG_DISABLED_INTEGRATIONS"] == "java,node"
    assert child["PGAPPNAME"] == UA  # the Python integrations are untouched


def test_runtime_hook_warning_is_one_line_and_the_command_still_runs(tmp_path: Path) -> None:
    proc = cli("run", "--user-agent", UA, sys.executable, "-c", "print('ran')",
               env=clean_env(JAVA_TOOL_OPTIONS="-Dx='unmatched",
                             UA_AUTOTAG_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0
    assert proc.stdout.strip() == "ran"
    (line,) = proc.stderr.splitlines()
    assert line.startswith("ua-autotag run: warning: java hook skipped: ")


def _exported_variables() -> dict:
    from ua_autotag.catalog import CATALOG, readers

    return {v: readers(v) for entry in CATALOG.values() for v in entry.exports}


@pytest.mark.parametrize(
    ("variable", "reader"),
    [(v, r) for v, names in _exported_variables().items() for r in names],
)
def test_an_export_is_dropped_while_any_of_its_readers_is_disabled(
    variable: str, reader: str, tmp_path: Path
) -> None:
    on = _child_env("--user-agent", UA, UA_AUTOTAG_CACHE_DIR=str(tmp_path))
    assert UA in on[variable].split()
    off = _child_env("--user-agent", UA, "--disable", reader, UA_AUTOTAG_CACHE_DIR=str(tmp_path))
    assert variable not in off


def test_the_launcher_imports_only_what_validation_and_exec_need(tmp_path: Path) -> None:
    """``run`` sits in front of every start of the program: it builds or checks the Java
    hook's jar without zipfile, and loads no engine, client or telemetry of its own."""
    env = clean_env(PYTHONPROFILEIMPORTTIME="1", UA_AUTOTAG_CACHE_DIR=str(tmp_path))
    for attempt in ("builds the jar", "reuses it"):
        result = cli("run", "--user-agent", UA, "true", env=env)
        assert result.returncode == 0, (attempt, result.stderr[-2000:])
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "ua_autotag.runtimes" in imported, attempt  # the run path was taken
        heavy = {"zipfile", "typing", "wrapt", "asyncio", "importlib.metadata",
                 "opentelemetry", "logging", "packaging"}  # fmt: skip
        assert heavy & imported == set(), attempt
    assert len(os.listdir(tmp_path)) == 1

