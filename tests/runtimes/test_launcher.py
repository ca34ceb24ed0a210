"""The real launcher end to end: ``ua-autotag run ... -- node app.cjs`` / ``-- java App``.

test_node.py and test_java.py prove the hooks by calling ``child_environment()``; here
the installed ``ua-autotag`` console script writes the child's environment and execs
the application, which knows nothing of ua-autotag. The main cases run ``launched``
(under ``ua-autotag run --user-agent AcmePartner_DatEngProduct/3.5``) and ``direct`` (the
same application and environment, no launcher: the control, which arrives untagged); the
launcher-only cases (modes, the app's own name, --disable, nested launches, an unwritable
cache) each also check something the control would not give.
The evidence is what the peers received: the local HTTPS recorder for ``@databricks/sql``,
``pg_stat_activity`` for node-postgres and pgjdbc.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.cli.conftest import SCRIPT
from tests.runtimes.apps import (
    DRIVER_DEFAULT,
    PG_CONNECTION,
    THEIR_JAVA_PROPERTIES,
    THEIR_JAVA_TOOL_OPTIONS,
    THEIR_PRELOAD_RAN,
    app_values,
    connect,
    dbsql_command,
    entry_sent,
    java_command,
    java_env,
    pg_application_name,
    run,
    run_app,
    their_node_options,
    user_agent_sent,
)
from tests.runtimes.conftest import UA, base_env

Launch = Callable[..., "list[str]"]

launched_or_direct = pytest.mark.parametrize("launched", [True, False], ids=["launched", "direct"])
commonjs_or_esm = pytest.mark.parametrize("esm", [False, True], ids=["commonjs", "esm"])
jdbc_apis = pytest.mark.parametrize("api", ["driver", "datasource"])

WARNING = "ua-autotag run: warning: "


@pytest.fixture(scope="session")
def launch() -> Launch:
    """``launch(*options)``: the command prefix ``ua-autotag run --user-agent UA OPTIONS --``."""
    assert os.access(SCRIPT, os.X_OK), f"the ua-autotag console script is not at {SCRIPT}"

    def prefix(*options: str) -> list[str]:
        return [SCRIPT, "run", "--user-agent", UA, *options, "--"]

    return prefix


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment; the launcher's jar cache inside the test's own folder."""
    return base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path / "jar-cache"))


def under(launch: Launch, launched: bool, *options: str) -> list[str]:
    return launch(*options) if launched else []


def assert_sent_once(peer: Any, entry: Optional[str]) -> None:
    """The recorder got ``entry`` as the userAgentEntry, and our value at most once."""
    assert entry_sent(peer) == entry
    agent = user_agent_sent(peer)
    assert agent.count(UA) == (entry or "").count(UA) <= 1, agent


# -- @databricks/sql against the HTTPS recorder -------------------------------------------
@commonjs_or_esm
@launched_or_direct
def test_databricks_sql_app(
    app_dir: Path, tls_peer: Any, env: dict[str, str], launch: Launch, esm: bool, launched: bool
) -> None:
    """``ua-autotag run -- node app.cjs`` / ``app.mjs``: the header carries the value once."""
    proc = connect(app_dir, tls_peer, env, esm=esm, launcher=under(launch, launched))
    assert_sent_once(tls_peer, UA if launched else None)
    assert "ua-autotag" not in proc.stderr  # no warning on the happy path


@commonjs_or_esm
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, "PartnerApp/1.0"),  # direct: the app's own entry alone
        ((), f"PartnerApp/1.0 {UA}"),  # append, the default: theirs kept, ours once after it
        (("--mode", "replace"), UA),
    ],
    ids=["direct", "append", "replace"],
)
def test_databricks_sql_app_with_its_own_entry(
    app_dir: Path, tls_peer: Any, env: dict[str, str], launch: Launch, esm: bool,
    options: Optional[tuple[str, ...]], expected: str,
) -> None:  # fmt: skip
    """The app passes ``userAgentEntry: 'PartnerApp/1.0'`` itself."""
    launcher = [] if options is None else launch(*options)
    connect(app_dir, tls_peer, env, {"userAgentEntry": "PartnerApp/1.0"}, esm=esm,
            launcher=launcher)  # fmt: skip
    assert_sent_once(tls_peer, expected)


def test_keep_mode_adds_the_value_only_where_the_app_has_none(
    app_dir: Path, tls_peer: Any, env: dict[str, str], launch: Launch
) -> None:
    launcher = launch("--mode", "keep")
    connect(app_dir, tls_peer, env, {"userAgentEntry": "PartnerApp/1.0"}, launcher=launcher)
    assert_sent_once(tls_peer, "PartnerApp/1.0")
    tls_peer.requests.clear()
    connect(app_dir, tls_peer, env, launcher=launcher)
    assert_sent_once(tls_peer, UA)


@commonjs_or_esm
@launched_or_direct
def test_existing_node_options_are_kept_and_take_effect(
    app_dir: Path, tls_peer: Any, env: dict[str, str], tmp_path: Path, launch: Launch,
    esm: bool, launched: bool,
) -> None:  # fmt: skip
    """NODE_OPTIONS with a quoted title and a preload of theirs (path with quotes and
    spaces): theirs still runs under the launcher, and ours is added to it."""
    env = {**env, "NODE_OPTIONS": their_node_options(tmp_path)}
    proc = connect(app_dir, tls_peer, env, esm=esm, launcher=under(launch, launched))
    assert THEIR_PRELOAD_RAN in proc.stdout.splitlines(), proc.stdout
    assert_sent_once(tls_peer, UA if launched else None)
    assert "ua-autotag" not in proc.stderr


def test_nested_launchers_add_the_value_once(
    app_dir: Path, tls_peer: Any, env: dict[str, str], launch: Launch, pg_dsn: str
) -> None:
    """``ua-autotag run -- ua-autotag run -- node ...``: neither hook nor value doubles."""
    nested = [*launch(), *launch()]
    connect(app_dir, tls_peer, env, {"userAgentEntry": "PartnerApp/1.0"}, launcher=nested)
    assert_sent_once(tls_peer, f"PartnerApp/1.0 {UA}")
    assert pg_application_name(app_dir, env, name="pg_app.js", launcher=nested) == UA


# -- node-postgres against the local PostgreSQL ---------------------------------------------
@pytest.mark.parametrize(
    ("theirs", "expected_launched", "expected_direct"),
    [
        (None, UA, ""),  # PGAPPNAME from the launcher; nothing without it
        ("etl-job", f"etl-job {UA}", "etl-job"),  # a PGAPPNAME of theirs, appended to
    ],
    ids=["no-pgappname", "their-pgappname"],
)
@launched_or_direct
def test_node_postgres_app(
    app_dir: Path, env: dict[str, str], launch: Launch, pg_dsn: str, launched: bool,
    theirs: Optional[str], expected_launched: str, expected_direct: str,
) -> None:  # fmt: skip
    """``ua-autotag run -- node pg_app.js``: what the server saw in pg_stat_activity."""
    if theirs is not None:
        env = {**env, "PGAPPNAME": theirs}
    got = pg_application_name(app_dir, env, name="pg_app.js", launcher=under(launch, launched))
    assert got == (expected_launched if launched else expected_direct)


def test_node_postgres_apps_own_name_wins(
    app_dir: Path, env: dict[str, str], launch: Launch, pg_dsn: str
) -> None:
    launcher = launch()
    assert pg_application_name(app_dir, env, name="pg_app.js", launcher=launcher) == UA
    own = {**PG_CONNECTION, "application_name": "their-app"}
    got = pg_application_name(app_dir, env, own, name="pg_app.js", launcher=launcher)
    assert got == "their-app"


# -- pgjdbc against the local PostgreSQL ----------------------------------------------------
@jdbc_apis
@launched_or_direct
def test_pgjdbc_app(
    java_app: Path, jdbc_url: str, env: dict[str, str], launch: Launch, api: str, launched: bool
) -> None:
    """``ua-autotag run -- java ... App``: DriverManager and PGSimpleDataSource."""
    out = run_app(java_app, env, api, jdbc_url, "-", launcher=under(launch, launched))
    assert out["application_name"] == (UA if launched else DRIVER_DEFAULT)


@jdbc_apis
@pytest.mark.parametrize("options", [(), ("--mode", "replace")], ids=["append", "replace"])
def test_pgjdbc_apps_own_application_name_wins(
    java_app: Path, jdbc_url: str, env: dict[str, str], launch: Launch, api: str,
    options: tuple[str, ...],
) -> None:  # fmt: skip
    """The jar is only a default: the app's ApplicationName wins in every mode."""
    launcher = launch(*options)
    assert run_app(java_app, env, api, jdbc_url, "-", launcher=launcher)["application_name"] == UA
    out = run_app(java_app, env, api, jdbc_url, "etl", launcher=launcher)
    assert out["application_name"] == "etl"


@jdbc_apis
@launched_or_direct
def test_existing_java_tool_options_are_kept_and_take_effect(
    java_app: Path, jdbc_url: str, env: dict[str, str], launch: Launch, api: str, launched: bool
) -> None:
    """JAVA_TOOL_OPTIONS with quotes and spaces: the JVM picks them up as written (ours
    after them) and the system properties they set still arrive."""
    env = {**env, "JAVA_TOOL_OPTIONS": THEIR_JAVA_TOOL_OPTIONS}
    command = [*under(launch, launched), *java_command(java_app, api, jdbc_url, "-")]
    proc = run(command, java_env(env))
    out = app_values(proc.stdout)
    assert {k: out[k] for k in THEIR_JAVA_PROPERTIES} == THEIR_JAVA_PROPERTIES
    assert out["application_name"] == (UA if launched else DRIVER_DEFAULT)
    picked = [ln for ln in proc.stderr.splitlines() if ln.startswith("Picked up JAVA_TOOL")]
    theirs = f"Picked up JAVA_TOOL_OPTIONS: {THEIR_JAVA_TOOL_OPTIONS}"
    if launched:
        jar = os.path.join(env["UA_AUTOTAG_CACHE_DIR"], "ua-autotag-pgjdbc-")
        assert len(picked) == 1 and picked[0].startswith(f"{theirs} -Xbootclasspath/a:{jar}")
        assert picked[0].endswith(".jar"), picked
    else:
        assert picked == [theirs]


# -- one launch, both runtimes ------------------------------------------------------------
def run_both(
    app_dir: Path, java_app: Path, jdbc_url: str, peer: Any, env: dict[str, str],
    launcher: list[str],
) -> tuple[dict[str, str], str]:  # fmt: skip
    """One launch whose child (sh) starts the node app, then the java app: (App's values,
    stderr)."""
    node = dbsql_command(app_dir)
    java = java_command(java_app, "driver", jdbc_url, "-")
    script = f"{shlex.join(node)} && {shlex.join(java)}"
    env = java_env({**env, "PEER_PORT": str(peer.port)})
    proc = run([*launcher, "sh", "-c", script], env, app_dir)
    assert "OPTIONS-UNCHANGED=true" in proc.stdout, proc.stdout
    return app_values(proc.stdout), proc.stderr


@pytest.mark.parametrize("how", ["--disable", "UA_AUTOTAG_DISABLED_INTEGRATIONS"])
@pytest.mark.parametrize("disabled", ["node", "java", None])
def test_disabling_one_runtime_leaves_the_other_tagged(
    app_dir: Path, java_app: Path, jdbc_url: str, tls_peer: Any, env: dict[str, str],
    launch: Launch, disabled: Optional[str], how: str,
) -> None:  # fmt: skip
    options: tuple[str, ...] = ()
    if disabled is not None and how == "--disable":
        options = ("--disable", disabled)
    elif disabled is not None:
        env = {**env, how: disabled}
    out, stderr = run_both(app_dir, java_app, jdbc_url, tls_peer, env, launch(*options))
    assert_sent_once(tls_peer, None if disabled == "node" else UA)
    assert out["application_name"] == (DRIVER_DEFAULT if disabled == "java" else UA)
    assert WARNING not in stderr  # disabling is not a problem to warn about


def test_an_inner_launch_with_another_value_wins(
    app_dir: Path, java_app: Path, jdbc_url: str, tls_peer: Any, env: dict[str, str],
    launch: Launch,
) -> None:  # fmt: skip
    """A launched product launching another: the inner value replaces the outer one in
    both hooks (the outer value is not sent next to it)."""
    inner = [SCRIPT, "run", "--user-agent", "Inner_Product/2", "--"]
    out, _ = run_both(app_dir, java_app, jdbc_url, tls_peer, env, [*launch(), *inner])
    assert_sent_once(tls_peer, "Inner_Product/2")
    assert out["application_name"] == "Inner_Product/2"


# -- never break the child ---------------------------------------------------------------
def test_unwritable_cache_dir_still_starts_the_java_child(
    java_app: Path, jdbc_url: str, tmp_path: Path, launch: Launch
) -> None:
    """The jar cannot be built: one warning line, and the JVM starts (untagged)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(blocker / "cache"))
    command = [*launch(), *java_command(java_app, "driver", jdbc_url, "-")]
    proc = run(command, java_env(env))
    assert app_values(proc.stdout)["application_name"] == DRIVER_DEFAULT
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # the warning is all there is on stderr
    line = lines[0]
    assert line.startswith(
        f"{WARNING}java hook skipped: cache directory {blocker / 'cache'} is not writable ("
    ), proc.stderr
    assert line.endswith("set UA_AUTOTAG_CACHE_DIR to a writable directory"), line


def test_unwritable_cache_dir_leaves_the_node_hook_alone(
    app_dir: Path, java_app: Path, jdbc_url: str, tls_peer: Any, tmp_path: Path, launch: Launch
) -> None:
    """In the same launch, the node child is still tagged; the java child still starts."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(blocker / "cache"))
    out, stderr = run_both(app_dir, java_app, jdbc_url, tls_peer, env, launch())
    assert_sent_once(tls_peer, UA)
    assert out["application_name"] == DRIVER_DEFAULT
    warnings = [ln for ln in stderr.splitlines() if ln.startswith(WARNING)]
    assert len(warnings) == 1 and "java hook skipped: cache directory" in warnings[0], stderr
