"""Opt-in .pth activation: written only by the command, instruments only when configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import pg
from tests.cli.conftest import UA, clean_env, cli, one_line_error
from ua_autotag import bootstrap

PROBE = (
    "import site, sys; site.addsitedir(sys.argv[1]); "
    "print('ua_autotag' in sys.modules, 'wrapt' in sys.modules); "
    "import ua_autotag; print(ua_autotag.is_instrumented())"
)


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=clean_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_install_writes_one_guarded_import_line(tmp_path: Path) -> None:
    proc = cli("install-pth", "--target", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / bootstrap.FILENAME
    assert str(path) in proc.stdout
    lines = path.read_text().splitlines()
    code = [line for line in lines if not line.startswith("#")]
    assert len(code) == 1 and code[0].startswith("import os;")
    assert lines[0].startswith(bootstrap.MARKER)


def test_pth_does_nothing_without_configuration(tmp_path: Path) -> None:
    assert cli("install-pth", "--target", str(tmp_path)).returncode == 0
    proc = _python(PROBE, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "False"]  # not even imported
    assert proc.stderr == ""


def test_pth_instruments_at_start_when_configured(tmp_path: Path, pg_dsn: str) -> None:
    assert cli("install-pth", "--target", str(tmp_path)).returncode == 0
    proc = _python(PROBE, str(tmp_path), UA_AUTOTAG_USER_AGENT=UA)
    # activated at start, and still lazy: wrapt waits for a client import
    assert proc.stdout.split() == ["True", "False", "True"], proc.stderr
    # and a real connection opened by code that never mentions ua_autotag is tagged
    code = (
        "import site, sys; site.addsitedir(sys.argv[1]); import psycopg; "
        f"c = psycopg.connect(sys.argv[2]); print(c.execute({pg.APPLICATION_NAME_SQL!r})"
        ".fetchone()[0])"
    )
    proc = _python(code, str(tmp_path), pg_dsn, UA_AUTOTAG_ISV="AcmePartner",
                   UA_AUTOTAG_PRODUCT="DatEngProduct", UA_AUTOTAG_VERSION="3.5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == UA


def test_pth_failure_is_one_line_and_the_interpreter_runs(tmp_path: Path) -> None:
    assert cli("install-pth", "--target", str(tmp_path)).returncode == 0
    code = "import site, sys; site.addsitedir(sys.argv[1]); print('alive')"
    proc = _python(code, str(tmp_path), UA_AUTOTAG_USER_AGENT="bad value",
                   UA_AUTOTAG_STRICT="true")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "alive"
    assert proc.stderr.startswith("ua-autotag: .pth activation failed: InvalidUserAgent")
    assert len(proc.stderr.splitlines()) == 1


def test_uninstall(tmp_path: Path) -> None:
    assert cli("install-pth", "--target", str(tmp_path)).returncode == 0
    proc = cli("uninstall-pth", "--target", str(tmp_path))
    assert proc.returncode == 0
    assert not (tmp_path / bootstrap.FILENAME).exists()
    proc = cli("uninstall-pth", "--target", str(tmp_path))
    assert proc.returncode == 0 and "nothing to remove" in proc.stdout
    # a file of that name we did not write is left alone
    (tmp_path / bootstrap.FILENAME).write_text("import something_else\n")
    assert "not written by ua-autotag" in one_line_error(
        cli("uninstall-pth", "--target", str(tmp_path)))
    assert (tmp_path / bootstrap.FILENAME).exists()


def test_never_installed_implicitly() -> None:
    """Installing the package (this venv) did not activate anything at interpreter start."""
    assert bootstrap.installed() == []
    proc = _python("import sys; print('ua_autotag' in sys.modules)", UA_AUTOTAG_USER_AGENT=UA)
    assert proc.stdout.strip() == "False"


def test_unwritable_target_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write" in one_line_error(cli("install-pth", "--target", str(blocker)))
