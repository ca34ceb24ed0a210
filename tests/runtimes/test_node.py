"""The Node.js hook: real node processes, real npm clients, real peers.

``@databricks/sql`` (from the npm registry) talks to a local HTTPS recorder; what the
recorder received is the evidence. ``pg`` talks to the local PostgreSQL, which
reports the name in ``pg_stat_activity``. The applications never mention ua-autotag.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Optional

import pytest

import ua_autotag
from tests import pg
from tests.runtimes.apps import (
    DBSQL_CJS,
    DBSQL_INHERITED_CJS,
    DBSQL_INHERITED_ESM,
    HEADER,
    KERNEL_IMPORT_CJS,
    KERNEL_IMPORT_ESM,
    KERNEL_PATH,
    PG_CONNECTION,
    THEIR_PRELOAD_RAN,
    connect,
    entry_sent,
    pg_application_name,
    run_node,
    their_node_options,
    user_agent_sent,
)
from tests.runtimes.conftest import TIMEOUT, UA, base_env
from ua_autotag.merge import KERNEL_USER_AGENT_LIMIT
from ua_autotag.runtimes import child_environment, describe
from ua_autotag.runtimes.node import PRELOAD, PRELOAD_CRC32, node_quote, parse_node_options
from ua_autotag.verify.runtimes import verify_node


def hooked(mode: str = "append", **extra: str) -> dict[str, str]:
    env = base_env(**extra)
    assert child_environment(env, UA, mode, disabled=("java",)) == []
    return env


# -- @databricks/sql ----------------------------------------------------------------------
@pytest.mark.parametrize("esm", [False, True], ids=["commonjs", "esm"])
def test_unmodified_app_sends_the_value(app_dir: Path, tls_peer: Any, esm: bool) -> None:
    proc = connect(app_dir, tls_peer, hooked(), esm=esm)
    assert entry_sent(tls_peer) == UA
    assert "ua-autotag" not in proc.stderr  # no warning on the happy path


@pytest.mark.parametrize("esm", [False, True], ids=["commonjs", "esm"])
def test_without_the_hook_no_entry_is_sent(app_dir: Path, tls_peer: Any, esm: bool) -> None:
    """The control: the value above comes from the hook."""
    connect(app_dir, tls_peer, base_env(UA_AUTOTAG_USER_AGENT=UA), esm=esm)
    assert entry_sent(tls_peer) is None


@pytest.mark.parametrize(
    ("mode", "own", "expected"),
    [
        ("append", "PartnerApp/1.0", f"PartnerApp/1.0 {UA}"),
        ("append", f"PartnerApp/1.0 {UA}", f"PartnerApp/1.0 {UA}"),  # exactly once
        ("replace", "PartnerApp/1.0", UA),
        ("keep", "PartnerApp/1.0", "PartnerApp/1.0"),
        ("keep", None, UA),
    ],
)
def test_modes_with_the_apps_own_entry(
    app_dir: Path, tls_peer: Any, mode: str, own: Optional[str], expected: str
) -> None:
    options = {} if own is None else {"userAgentEntry": own}
    connect(app_dir, tls_peer, hooked(mode), options)
    assert entry_sent(tls_peer) == expected


def test_mode_and_value_from_the_launchers_own_variables(app_dir: Path, tls_peer: Any) -> None:
    """With UA_AUTOTAG_USER_AGENT / UA_AUTOTAG_MODE already right, nothing is duplicated."""
    env = base_env(UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_MODE="replace")
    assert child_environment(env, UA, "replace", disabled=("java",)) == []
    assert "UA_AUTOTAG_NODE_USER_AGENT" not in env and "UA_AUTOTAG_NODE_MODE" not in env
    connect(app_dir, tls_peer, env, {"userAgentEntry": "PartnerApp/1.0"})
    assert entry_sent(tls_peer) == UA


def test_deprecated_client_id_is_merged(app_dir: Path, tls_peer: Any) -> None:
    connect(app_dir, tls_peer, hooked(), {"clientId": "PartnerApp/1.0"})
    assert entry_sent(tls_peer) == f"PartnerApp/1.0 {UA}"


def test_legacy_release_that_reads_only_client_id(
    tmp_path: Path, legacy_node_modules: Path, tls_peer: Any
) -> None:
    (tmp_path / "node_modules").symlink_to(legacy_node_modules, target_is_directory=True)
    connect(tmp_path, tls_peer, hooked())
    assert entry_sent(tls_peer) == UA
    tls_peer.requests.clear()
    connect(tmp_path, tls_peer, hooked(), {"clientId": "PartnerApp/1.0"})
    assert entry_sent(tls_peer) == f"PartnerApp/1.0 {UA}"


def test_nested_launches_and_a_second_preload_copy_add_it_once(
    app_dir: Path, tls_peer: Any, tmp_path: Path
) -> None:
    env = hooked()
    once = dict(env)
    assert child_environment(env, UA, "append", disabled=("java",)) == []
    assert env == once, "a nested launch changed the environment again"
    # another installation's copy of the preload on top (a nested launch from another venv)
    other = tmp_path / "other-install" / "preload.cjs"
    other.parent.mkdir()
    shutil.copy(PRELOAD, other)
    env["NODE_OPTIONS"] += f' --require "{other}"'
    connect(app_dir, tls_peer, env, {"userAgentEntry": "PartnerApp/1.0"})
    assert entry_sent(tls_peer) == f"PartnerApp/1.0 {UA}"


def test_existing_node_options_with_quotes_and_spaces_are_kept(
    app_dir: Path, tls_peer: Any, tmp_path: Path
) -> None:
    existing = their_node_options(tmp_path)
    env = hooked(NODE_OPTIONS=existing)
    assert env["NODE_OPTIONS"].startswith(existing + " ")
    proc = connect(app_dir, tls_peer, env)
    assert THEIR_PRELOAD_RAN in proc.stdout.splitlines()
    assert entry_sent(tls_peer) == UA


@pytest.mark.parametrize("esm", [False, True], ids=["commonjs", "esm"])
def test_only_the_client_class_is_wrapped(app_dir: Path, tls_peer: Any, esm: bool) -> None:
    """The app also imports the kernel backend's module (its default export has a connect()
    too) and connects through the kernel (``useKernel``): the entry DBSQLClient merged
    reaches the wire as merged, not replaced by ours."""
    own = {
        "useKernel": True,
        "host": f"127.0.0.1:{tls_peer.port}",
        "userAgentEntry": "PartnerApp/1.0",
    }
    prelude = KERNEL_IMPORT_ESM if esm else KERNEL_IMPORT_CJS
    connect(app_dir, tls_peer, hooked(), own, esm=esm, prelude=prelude)
    assert entry_sent(tls_peer, KERNEL_PATH) == f"PartnerApp/1.0 {UA}"


@pytest.mark.parametrize("pad", ["", "x"], ids=["even", "odd"])  # the cut inside a 2-byte é
def test_a_long_entry_fits_the_kernels_user_agent_with_our_token_whole(
    app_dir: Path, tls_peer: Any, pad: str
) -> None:
    """A caller's entry of ~1100 bytes through the kernel (``useKernel``): the header the
    kernel sends stays within its 1024 bytes, our token whole at the end of the entry,
    the caller's part shortened from its end (on a character boundary: the bytes received
    decode as UTF-8). A short entry goes as merged (test_only_the_client_class_is_wrapped)."""
    theirs = f"PartnerApp/1.0 {pad}" + "é" * 545
    own = {"useKernel": True, "host": f"127.0.0.1:{tls_peer.port}", "userAgentEntry": theirs}
    connect(app_dir, tls_peer, hooked(), own)
    raw = user_agent_sent(tls_peer, KERNEL_PATH).encode("latin-1")  # the bytes received
    assert len(raw) <= KERNEL_USER_AGENT_LIMIT, len(raw)
    match = HEADER.match(raw.decode("utf-8"))  # strict: a split character fails here
    assert match and match.group("entry"), raw[-120:]  # the kernel's cut took the ")" too
    entry = match.group("entry")
    assert entry.endswith(f" {UA}"), raw[-120:]
    kept = entry[: -len(UA) - 1]
    assert theirs.startswith(kept) and len(kept.encode()) > 800, kept


def test_the_preloads_kernel_limit_is_the_python_sides() -> None:
    assert f"var KERNEL_USER_AGENT_LIMIT = {KERNEL_USER_AGENT_LIMIT};" in Path(PRELOAD).read_text()


@pytest.mark.parametrize("esm", [False, True], ids=["commonjs", "esm"])
@pytest.mark.parametrize("shape", ["prototype", "class"])
def test_options_inherited_through_a_prototype_reach_the_driver(
    app_dir: Path, tls_peer: Any, esm: bool, shape: str
) -> None:
    """Options from Object.create(defaults), or getters of a config class reading private
    fields: the driver reads them all (it reaches the peer), the entry is merged, and the
    app's object keeps its own keys and prototype."""
    name, source = (
        ("inherited.mjs", DBSQL_INHERITED_ESM) if esm else ("inherited.cjs", DBSQL_INHERITED_CJS)
    )
    env = {**hooked(), "PEER_PORT": str(tls_peer.port)}
    proc = run_node(app_dir, name, source, env, shape)
    assert "OPTIONS-UNCHANGED=true" in proc.stdout, proc.stdout
    assert entry_sent(tls_peer) == f"PartnerApp/1.0 {UA}"


def test_a_failure_inside_the_wrapper_never_reaches_the_app(app_dir: Path, tls_peer: Any) -> None:
    """Options whose ``clientId`` throws on its first read (ours): connect() still runs,
    with the app's own object, and one line on stderr says what was skipped."""
    source = DBSQL_CJS.replace(
        "const before = JSON.stringify(options);",
        "const before = JSON.stringify(options);\n"
        "let reads = 0;\n"
        "Object.defineProperty(options, 'clientId', { get() {\n"
        "  if (reads++ === 0) throw new Error('not yet'); return undefined; } });",
    )
    env = {**hooked(), "PEER_PORT": str(tls_peer.port)}
    proc = run_node(app_dir, "hostile.cjs", source, env)
    assert "OPTIONS-UNCHANGED=true" in proc.stdout
    assert entry_sent(tls_peer) is None  # reached the peer without our entry
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("ua-autotag:")]
    assert ours == [
        "ua-autotag: node preload: @databricks/sql connect options left unchanged: not yet"
    ]


def test_apps_that_never_load_the_driver_see_nothing(app_dir: Path) -> None:
    source = "require('pg'); require('path'); console.log('plain app ran');\n"
    proc = run_node(app_dir, "plain.cjs", source, hooked())
    assert proc.stdout.strip() == "plain app ran"
    assert proc.stderr == ""


# -- node-postgres -------------------------------------------------------------------------
def test_node_postgres_reads_pgappname(app_dir: Path, pg_dsn: str) -> None:
    """The launcher's PGAPPNAME reaches node-postgres (with the preload loaded too)."""
    env = hooked(PGAPPNAME=UA)
    assert pg_application_name(app_dir, env) == UA
    # control: without PGAPPNAME the server records no name at all
    assert pg_application_name(app_dir, hooked()) == ""
    # the application's own name wins over PGAPPNAME
    own = {**PG_CONNECTION, "application_name": "etl"}
    assert pg_application_name(app_dir, env, own) == "etl"


# -- what can go wrong ---------------------------------------------------------------------
def test_preload_digest_matches_the_shipped_file() -> None:
    digest = f"{zlib.crc32(Path(PRELOAD).read_bytes()):08x}"
    assert digest == PRELOAD_CRC32, (
        f"preload.cjs changed: set PRELOAD_CRC32 = {digest!r} in ua_autotag/runtimes/node"
    )


def _damaged_install(tmp_path: Path, damage: str) -> Path:
    """A copy of the package whose preload is ``damage``d, importable alone."""
    root = tmp_path / "site"
    package = root / "ua_autotag"
    shutil.copytree(Path(ua_autotag.__file__).parent, package)
    preload = package / "runtimes" / "node" / "preload.cjs"
    if damage == "truncated":
        preload.write_bytes(preload.read_bytes()[:-200])
    else:
        preload.unlink()
    return root


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_preload_warns_once_and_the_child_still_starts(
    app_dir: Path, tmp_path: Path, damage: str, node: str
) -> None:
    root = _damaged_install(tmp_path, damage)
    code = (
        "import json, os, sys; from ua_autotag import runtimes; env = dict(os.environ); "
        "w = runtimes.child_environment(env, sys.argv[1], 'append', ['java']); "
        "print(json.dumps({'warnings': w, 'env': env}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, UA], env=base_env(PYTHONPATH=str(root)),
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["warnings"]) == 1, result["warnings"]
    expected = "damaged" if damage == "truncated" else "unreadable"
    assert result["warnings"][0].startswith(f"node hook skipped: preload file {expected}")
    assert "NODE_OPTIONS" not in result["env"]
    started = run_node(app_dir, "plain.cjs", "console.log('started');\n", result["env"])
    assert started.stdout.strip() == "started"
    if damage == "truncated":  # the check matters: node itself dies on such a preload
        broken = root / "ua_autotag" / "runtimes" / "node" / "preload.cjs"
        died = subprocess.run(
            ["node", "-e", "0"], env=base_env(NODE_OPTIONS=f'--require "{broken}"'),
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert died.returncode != 0


def test_missing_node_is_not_a_warning(tmp_path: Path) -> None:
    """No node on PATH: the hook is still added (a child may find one), no warning."""
    env = base_env(PATH=str(tmp_path / "empty-bin"))
    assert child_environment(env, UA, "append", disabled=("java",)) == []
    assert parse_node_options(env["NODE_OPTIONS"]) == ["--require", PRELOAD]
    proc = subprocess.run(
        ["/bin/sh", "-c", "echo started"], env=env, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "started"
    (report,) = (r for r in describe(env) if r["runtime"] == "node")
    assert report["binary"] is None and report["would_add"] is True and report["present"]
    assert "not on PATH" in report["reason"]


def test_invalid_node_options_are_left_alone(node: str) -> None:
    env = base_env(NODE_OPTIONS='--title "unterminated')
    assert child_environment(env, UA, "append", disabled=("java",)) == [
        "node hook skipped: NODE_OPTIONS is not valid for node (unterminated string); "
        "left unchanged"
    ]
    assert env["NODE_OPTIONS"] == '--title "unterminated'
    # node agrees that it is invalid
    proc = subprocess.run(
        ["node", "-e", "0"], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode != 0


@pytest.mark.parametrize(
    "title",
    ["plain", "two words", 'with "quotes"', "it's", "back\\slash", "trailing\\"],
)
def test_option_quoting_matches_node(node: str, title: str) -> None:
    """Our NODE_OPTIONS quoting, read back by node itself."""
    quoted = node_quote(title)
    assert parse_node_options(f"--title={quoted}") == [f"--title={title}"]
    env = base_env(NODE_OPTIONS=f"--title={quoted}")
    proc = subprocess.run(
        ["node", "-e", "process.stdout.write(JSON.stringify(process.title))"], env=env,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == title


# -- verify helpers ------------------------------------------------------------------------
def test_verify_node_with_databricks_sql(node_modules: Path) -> None:
    result = verify_node(UA, cwd=str(node_modules.parent))
    match = HEADER.match(result.get("received", ""))
    assert match and match.group("entry") == UA, result
    assert result["client"] == "@databricks/sql" and "HTTPS" in result["where"]


def test_verify_node_falls_back_to_pg(node_modules: Path, tmp_path: Path, pg_dsn: str) -> None:
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "pg").symlink_to(node_modules / "pg")
    result = verify_node(
        UA, cwd=str(tmp_path), host=pg.HOST, port=pg.PORT, user=pg.USER, dbname=pg.DBNAME
    )
    assert result.get("received") == UA, result
    assert result["client"] == "pg" and "PGAPPNAME" in result["where"]


def test_verify_node_skips_without_a_client(node: str, tmp_path: Path) -> None:
    result = verify_node(UA, cwd=str(tmp_path))
    assert "skip" in result and "@databricks/sql" in result["skip"], result
