"""The Java hook: real JVMs running pgjdbc against the local PostgreSQL.

The application (App.java) never mentions ua-autotag; what PostgreSQL reports in
``pg_stat_activity`` for its own backend is the evidence.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import pg
from tests.runtimes.apps import (
    DRIVER_DEFAULT,
    THEIR_JAVA_PROPERTIES,
    THEIR_JAVA_TOOL_OPTIONS,
    run_app,
)
from tests.runtimes.conftest import TIMEOUT, UA, base_env
from ua_autotag import runtimes
from ua_autotag.runtimes import child_environment, describe
from ua_autotag.runtimes.java import DRIVERCONFIG, ensure_jar, jar_path, parse_java_tool_options
from ua_autotag.verify.runtimes import verify_java


def hooked(tmp_path: Path, value: str = UA, **extra: str) -> dict[str, str]:
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path / "cache"), **extra)
    assert child_environment(env, value, "append", disabled=("node",)) == []
    return env


@pytest.mark.parametrize("api", ["driver", "datasource"])
def test_unmodified_app_reports_the_value(
    api: str, java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    env = hooked(tmp_path)
    assert run_app(java_app, env, api, jdbc_url, "-")["application_name"] == UA


@pytest.mark.parametrize("api", ["driver", "datasource"])
def test_without_the_hook_the_driver_default_is_sent(
    api: str, java_app: Path, jdbc_url: str
) -> None:
    """The control: the value above comes from the hook, not from the environment."""
    assert run_app(java_app, base_env(), api, jdbc_url, "-")["application_name"] == DRIVER_DEFAULT


@pytest.mark.parametrize("api", ["driver", "datasource", "datasource-url"])
def test_the_applications_own_name_wins(
    api: str, java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    env = hooked(tmp_path)
    assert run_app(java_app, env, api, jdbc_url, "etl")["application_name"] == "etl"
    if api != "datasource":  # that one takes no URL
        in_url = f"{jdbc_url}?ApplicationName=from-url"
        assert run_app(java_app, env, api, in_url, "-")["application_name"] == "from-url"


def test_datasource_set_up_with_seturl_is_not_covered(
    java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    """A known gap, pinned so a pgjdbc change shows up: ``setURL`` copies every built-in
    default (ApplicationName included) into the data source, so ours never applies."""
    env = hooked(tmp_path)
    got = run_app(java_app, env, "datasource-url", jdbc_url, "-")["application_name"]
    assert got == DRIVER_DEFAULT


def test_existing_java_tool_options_with_quotes_and_spaces_still_work(
    java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    env = hooked(tmp_path, JAVA_TOOL_OPTIONS=THEIR_JAVA_TOOL_OPTIONS)
    assert env["JAVA_TOOL_OPTIONS"].startswith(THEIR_JAVA_TOOL_OPTIONS + " ")
    out = run_app(java_app, env, "driver", jdbc_url, "-")
    assert {k: out[k] for k in THEIR_JAVA_PROPERTIES} == THEIR_JAVA_PROPERTIES
    assert out["application_name"] == UA


def test_cache_path_with_spaces_is_quoted_for_the_jvm(
    java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path / "a cache dir"))
    assert child_environment(env, UA, "append", disabled=("node",)) == []
    (option,) = parse_java_tool_options(env["JAVA_TOOL_OPTIONS"])
    assert option == f"-Xbootclasspath/a:{jar_path(UA, str(tmp_path / 'a cache dir'))}"
    assert run_app(java_app, env, "driver", jdbc_url, "-")["application_name"] == UA


def test_properties_escaping_round_trips_through_the_jvm(java_app: Path, tmp_path: Path) -> None:
    value = "Acme_P/1 a=b:c#!\\x \u00e9\u4e2d\U0001f600"
    env = hooked(tmp_path, value=value)
    hexed = run_app(java_app, env, "resource")["resource"]
    chars = [chr(int(hexed[i : i + 4], 16)) for i in range(0, len(hexed), 4)]
    assert "".join(chars).encode("utf-16", "surrogatepass").decode("utf-16") == value


def test_special_characters_reach_postgresql(java_app: Path, jdbc_url: str, tmp_path: Path) -> None:
    value = "Acme_P/1 a=b:c#!\\x"
    env = hooked(tmp_path, value=value)
    assert run_app(java_app, env, "driver", jdbc_url, "-")["application_name"] == value


def test_nested_launches(java_app: Path, jdbc_url: str, tmp_path: Path) -> None:
    env = hooked(tmp_path)
    once = dict(env)
    assert child_environment(env, UA, "append", disabled=("node",)) == []
    assert env["JAVA_TOOL_OPTIONS"] == once["JAVA_TOOL_OPTIONS"], "hook added twice"
    # an inner launch with another value: its jar replaces the outer one
    assert child_environment(env, "Other_Product/2", "append", disabled=("node",)) == []
    options = parse_java_tool_options(env["JAVA_TOOL_OPTIONS"])
    assert len([o for o in options if o.startswith("-Xbootclasspath/a:")]) == 1
    assert run_app(java_app, env, "driver", jdbc_url, "-")["application_name"] == "Other_Product/2"


def test_unwritable_cache_dir_warns_once_and_the_child_still_starts(
    java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(blocker / "cache"), JAVA_TOOL_OPTIONS="-Xss2m")
    warnings = child_environment(env, UA, "append", disabled=("node",))
    assert len(warnings) == 1
    assert warnings[0].startswith("java hook skipped: cache directory")
    assert "UA_AUTOTAG_CACHE_DIR" in warnings[0]
    assert env["JAVA_TOOL_OPTIONS"] == "-Xss2m"
    out = run_app(java_app, env, "driver", jdbc_url, "-")
    assert out["application_name"] == DRIVER_DEFAULT
    (report,) = (r for r in describe(env, value=UA) if r["runtime"] == "java")
    assert report["would_add"] is False and "not usable" in report["reason"]


def test_unmatched_quote_in_existing_options_is_left_alone(tmp_path: Path) -> None:
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path), JAVA_TOOL_OPTIONS="-Dx='oops")
    warnings = child_environment(env, UA, "append", disabled=("node",))
    assert warnings == [
        "java hook skipped: JAVA_TOOL_OPTIONS has an unmatched quote; left unchanged"
    ]
    assert env["JAVA_TOOL_OPTIONS"] == "-Dx='oops"


def test_missing_java_is_not_a_warning(tmp_path: Path) -> None:
    """No java on PATH: the hook is still added (a child may find one), no warning."""
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path), PATH=str(tmp_path / "empty-bin"))
    assert child_environment(env, UA, "append", disabled=("node",)) == []
    assert "-Xbootclasspath/a:" in env["JAVA_TOOL_OPTIONS"]
    proc = subprocess.run(
        ["/bin/sh", "-c", 'echo "started $JAVA_TOOL_OPTIONS"'], env=env, capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("started -Xbootclasspath/a:")
    (report,) = (r for r in describe(env, value=UA) if r["runtime"] == "java")
    assert report["binary"] is None and report["would_add"] is True
    assert "not on PATH" in report["reason"]


def test_jar_is_rebuilt_when_damaged_and_reused_when_intact(tmp_path: Path) -> None:
    directory = str(tmp_path / "cache")
    path = ensure_jar(UA, directory)
    with zipfile.ZipFile(path) as jar:
        assert jar.namelist() == [DRIVERCONFIG]
        assert jar.read(DRIVERCONFIG).decode().splitlines()[-1] == f"ApplicationName={UA}"
    first = os.stat(path)
    assert ensure_jar(UA, directory) == path
    assert os.stat(path).st_ino == first.st_ino, "an intact jar was rewritten"

    # an extra resource (say, a class) must never reach the boot class path
    with zipfile.ZipFile(path, "a") as jar:
        jar.writestr("org/postgresql/Driver.class", b"\xca\xfe\xba\xbe")
    ensure_jar(UA, directory)
    with zipfile.ZipFile(path) as jar:
        assert jar.namelist() == [DRIVERCONFIG]

    Path(path).write_bytes(b"truncated")
    ensure_jar(UA, directory)
    with zipfile.ZipFile(path) as jar:
        assert jar.read(DRIVERCONFIG).endswith(f"ApplicationName={UA}\n".encode())
    assert sorted(os.listdir(directory)) == [os.path.basename(path)], "temporary files left"


def test_default_cache_dir_follows_xdg(tmp_path: Path) -> None:
    env = base_env(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert child_environment(env, UA, "append", disabled=("node",)) == []
    assert str(tmp_path / "xdg" / "ua-autotag" / "ua-autotag-pgjdbc-") in env["JAVA_TOOL_OPTIONS"]


def test_disabled_java_changes_nothing(tmp_path: Path) -> None:
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(tmp_path / "c"))
    before = dict(env)
    assert child_environment(env, UA, "append", disabled=("java", "node")) == []
    assert env == before
    assert not (tmp_path / "c").exists()
    assert all(r["reason"] == "disabled" for r in describe(env, ["all"], value=UA))


def test_verify_java_reports_what_postgresql_received(java: str, pg_dsn: str) -> None:
    result = verify_java(UA, host=pg.HOST, port=pg.PORT, user=pg.USER, dbname=pg.DBNAME)
    assert result.get("received") == UA, result
    assert "pg_stat_activity" in result["where"]


def test_verify_java_skips_without_the_jar(tmp_path: Path) -> None:
    result = verify_java(UA, jar=str(tmp_path / "missing.jar"))
    assert "skip" in result and "pgjdbc" in result["skip"]


def test_module_imports_only_the_standard_library() -> None:
    """The launcher imports the hooks on every run: no third-party import may come with them."""
    names = set()
    sources = Path(runtimes.__file__).parent.rglob("*.py")
    for node in (n for f in sources for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    assert {"zlib", "struct"} <= names, "parsed no imports"
    assert sorted(n for n in names if n not in sys.stdlib_module_names) == []
