"""Tags survive os.fork, multiprocessing (fork and spawn) and pre-fork worker models."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ua_autotag
from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"
ROOT = Path(__file__).parents[2]


def _app_name_in_child_after_fork() -> str:
    import psycopg

    with psycopg.connect(pg.DSN) as conn:
        return str(conn.execute(pg.APPLICATION_NAME_SQL).fetchone()[0])


def test_os_fork_prefork_workers(pg_dsn: str) -> None:
    """gunicorn-style: the parent instruments and imports, then forks workers that connect."""
    import psycopg  # noqa: F401  (imported before the fork, as a pre-loading server would)

    ua_autotag.instrument(UA, spans=False)
    workers = []
    for _ in range(3):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # worker
            code = 1
            try:
                os.close(read)
                os.write(write, _app_name_in_child_after_fork().encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        workers.append((pid, read))
    for pid, read in workers:
        with os.fdopen(read, "rb") as pipe:
            got = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert got == UA


SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp
    import sys

    import ua_autotag

    # at top level: a spawned worker re-runs it when it re-imports this module
    ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", spans=False)

    DSN = {dsn!r}
    SQL = {sql!r}

    def work(_):
        import psycopg
        with psycopg.connect(DSN) as conn:
            return conn.execute(SQL).fetchone()[0]

    if __name__ == "__main__":
        ctx = mp.get_context(sys.argv[1])
        with ctx.Pool(2) as pool:
            print("|".join(pool.map(work, range(4))))
    """
)


def _run_pool(tmp_path: Path, method: str) -> list[str]:
    script = tmp_path / "pool_app.py"
    script.write_text(SCRIPT.format(dsn=pg.DSN, sql=pg.APPLICATION_NAME_SQL))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env["PGAPPNAME"] = ""
    result = subprocess.run(
        [sys.executable, str(script), method],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().split("|")


def test_multiprocessing_fork(tmp_path: Path, pg_dsn: str) -> None:
    assert _run_pool(tmp_path, "fork") == [UA] * 4


def test_multiprocessing_spawn(tmp_path: Path, pg_dsn: str) -> None:
    assert _run_pool(tmp_path, "spawn") == [UA] * 4


def test_env_configuration_reaches_spawned_grandchildren(tmp_path: Path, pg_dsn: str) -> None:
    """Containers: the env var alone tags a grandchild that only does `import ua_autotag`."""
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(
        "import ua_autotag, psycopg\n"
        f"with psycopg.connect({pg.DSN!r}) as c:\n"
        f"    print(c.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0])\n"
    )
    child = tmp_path / "child.py"
    child.write_text(
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, {str(grandchild)!r}], check=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env.update(UA_AUTOTAG_USER_AGENT=UA, PGAPPNAME="", UA_AUTOTAG_SPANS="false")
    result = subprocess.run(
        [sys.executable, str(child)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == UA


def test_launcher_environment_reaches_python_grandchildren(tmp_path: Path, pg_dsn: str) -> None:
    """`ua-autotag run python child.py`; child starts grandchild.py; grandchild connects."""
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(
        "import psycopg\n"  # no ua_autotag import: the launcher's sitecustomize does it
        f"with psycopg.connect({pg.DSN!r}) as c:\n"
        f"    print(c.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0])\n"
    )
    child = tmp_path / "child.py"
    child.write_text(
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, {str(grandchild)!r}], check=True)\n"
    )
    launcher = Path(sys.executable).with_name("ua-autotag")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env.pop("PGAPPNAME", None)
    result = subprocess.run(
        [str(launcher), "run", "--user-agent", UA, "--no-spans", "--", sys.executable, str(child)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == UA
