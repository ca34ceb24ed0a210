"""Real runtimes for the hook tests: node + npm packages, java + pgjdbc, a TLS recorder.

Outside CI a missing runtime skips its tests; under CI (``CI=true``) it fails them,
so a machine without Node.js or Java can never turn the suite green by skipping.
npm packages are installed once into a cache folder outside the repository
(``UA_AUTOTAG_TEST_NPM_PREFIX``, default ``~/.cache/ua-autotag-tests``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"
PGJDBC = os.environ.get("UA_AUTOTAG_TEST_PGJDBC", "/usr/share/java/postgresql.jar")
NPM_PREFIX = Path(
    os.environ.get("UA_AUTOTAG_TEST_NPM_PREFIX", "~/.cache/ua-autotag-tests")
).expanduser()
#: the packages the tests install (majors pinned: a new major is a deliberate bump)
NPM_PACKAGES = {"@databricks/sql": "2", "pg": "8"}
#: a 1.x release of @databricks/sql: it reads only the deprecated ``clientId``
LEGACY_DBSQL = "1.8.4"
TIMEOUT = 180  # generous: a hung child must fail the test, a slow machine must not


def need(ok: bool, what: str) -> None:
    """Skip (fail under CI) when ``what`` is missing."""
    if ok:
        return
    message = f"{what} is missing; scripts/system-deps.sh installs it"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI: not skipping)")
    pytest.skip(message)


def base_env(**extra: str) -> dict[str, str]:
    """The parent's environment without anything that would pre-set a hook or a value."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UA_AUTOTAG_", "PG"))
        and k not in ("NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "NODE_PATH", "JDK_JAVA_OPTIONS")
    }
    env.update(extra)
    return env


def _installed(prefix: Path, name: str) -> str | None:
    try:
        data = json.loads((prefix / "node_modules" / name / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("version"))


def npm_install(prefix: Path, specs: dict[str, str]) -> Path:
    """``npm install`` ``specs`` into ``prefix`` unless matching versions are there (under
    a lock on the folder: test processes running in parallel share it)."""
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _npm_install(prefix, specs)


def _npm_install(prefix: Path, specs: dict[str, str]) -> Path:
    missing = {
        name: want
        for name, want in specs.items()
        if not (_installed(prefix, name) or "").startswith(f"{want}.")
        and _installed(prefix, name) != want
    }
    if missing:
        need(shutil.which("npm") is not None, "npm")
        proc = subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
             *(f"{n}@{v}" for n, v in missing.items())],
            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, f"npm install failed: {proc.stderr[-2000:]}"
    return prefix / "node_modules"


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    need(found is not None, "node")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def node_modules(node: str) -> Path:
    """@databricks/sql 2.x and pg 8.x from the npm registry, installed once."""
    return npm_install(NPM_PREFIX, NPM_PACKAGES)


@pytest.fixture(scope="session")
def legacy_node_modules(node: str) -> Path:
    return npm_install(NPM_PREFIX / "legacy", {"@databricks/sql": LEGACY_DBSQL})


@pytest.fixture
def app_dir(tmp_path: Path, node_modules: Path) -> Path:
    """A folder whose node_modules is the installed one (ESM ignores NODE_PATH)."""
    (tmp_path / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return tmp_path


@pytest.fixture(scope="session")
def java() -> str:
    found = shutil.which("java")
    need(found is not None, "java")
    need(os.path.isfile(PGJDBC), f"pgjdbc ({PGJDBC}, Debian libpostgresql-jdbc-java)")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def java_app(java: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/runtimes/App.java compiled once (the JDBC application under test)."""
    need(shutil.which("javac") is not None, "javac")
    out = tmp_path_factory.mktemp("java-app")
    proc = subprocess.run(
        ["javac", "-cp", PGJDBC, "-d", str(out), str(Path(__file__).with_name("App.java"))],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def tls_peer() -> Iterator[object]:
    """A started HTTPS header recorder (throwaway self-signed certificate)."""
    from ua_autotag.verify.tls_peer import TlsHeaderRecorder

    with TlsHeaderRecorder() as peer:
        yield peer


@pytest.fixture
def jdbc_url(pg_dsn: str) -> str:
    """The local PostgreSQL as a pgjdbc URL (fails, not skips, when the server is down)."""
    return f"jdbc:postgresql://{pg.HOST}:{pg.PORT}/{pg.DBNAME}"
