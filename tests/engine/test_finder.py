"""The lazy engine lost nothing: every import order, threads, reload and fork still tag.

Each scenario runs in a fresh interpreter (a client, once imported, cannot be
un-imported) and prints what the server recorded for its connections.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"

HEAVY = ("wrapt", "logging", "asyncio", "importlib.metadata", "packaging", "opentelemetry")

PRELUDE = f"""
import json, os, sys
DSN = {pg.DSN!r}
SQL = {pg.APPLICATION_NAME_SQL!r}
def seen_pg2():
    import psycopg2
    c = psycopg2.connect(DSN)
    try:
        cur = c.cursor(); cur.execute(SQL); return cur.fetchone()[0]
    finally:
        c.close()
def seen_pg3():
    import psycopg
    with psycopg.connect(DSN) as c:
        return c.execute(SQL).fetchone()[0]
"""


def run(code: str, **env: str) -> dict:
    environ = {k: v for k, v in __import__("os").environ.items() if not k.startswith("UA_AUTOTAG")}
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_configured_import_and_instrument_load_nothing_heavy() -> None:
    out = run(
        f"""
        before = set(sys.modules)
        import ua_autotag
        ua_autotag.instrument({UA!r}, packages=["some_product"])
        added = set(sys.modules) - before
        heavy = sorted(m for m in added if m.split(".")[0] in {HEAVY!r} or m in {HEAVY!r})
        print(json.dumps({{"heavy": heavy, "instrumented": ua_autotag.is_instrumented()}}))
        """,
        UA_AUTOTAG_USER_AGENT=UA,
    )
    assert out == {"heavy": [], "instrumented": True}


def test_engine_loads_when_the_client_is_imported(pg_dsn: str) -> None:
    out = run(
        """
        import ua_autotag
        before = "wrapt" in sys.modules
        import psycopg2
        print(json.dumps({"before": before, "after": "wrapt" in sys.modules, "seen": seen_pg2()}))
        """,
        UA_AUTOTAG_USER_AGENT=UA,
    )
    assert out == {"before": False, "after": True, "seen": UA}


@pytest.mark.parametrize(
    "order",
    [
        "import psycopg2, ua_autotag; ua_autotag.instrument(UA)",  # client first
        "import ua_autotag; ua_autotag.instrument(UA); import psycopg2",  # client after
        "import ua_autotag, importlib; ua_autotag.instrument(UA); "
        "importlib.import_module('psycopg2')",
        "import ua_autotag; ua_autotag.instrument(UA); __import__('psycopg2.extras')",
    ],
    ids=["before", "after", "import_module", "submodule-first"],
)
def test_every_import_order_is_tagged(order: str, pg_dsn: str) -> None:
    out = run(f"UA = {UA!r}\n{order}\nprint(json.dumps({{'seen': seen_pg2()}}))")
    assert out["seen"] == UA


def test_client_imported_in_a_thread_while_another_thread_instruments(pg_dsn: str) -> None:
    """Many rounds of a race: a thread imports psycopg while the main thread instruments."""
    out = run(
        f"""
        import threading, importlib, ua_autotag
        results = []
        def importer(started):
            started.set()
            import psycopg
            results.append(seen_pg3())
        started = threading.Event()
        t = threading.Thread(target=importer, args=(started,))
        t.start(); started.wait()
        ua_autotag.instrument({UA!r})
        t.join()
        # the thread may have connected before instrument() finished: connect once more
        results.append(seen_pg3())
        print(json.dumps({{"last": results[-1], "status": ua_autotag.status()["psycopg"].state}}))
        """
    )
    assert out == {"last": UA, "status": "patched"}


def test_reload_neither_loses_nor_doubles_the_tag(pg_dsn: str) -> None:
    out = run(
        f"""
        import importlib, ua_autotag
        ua_autotag.instrument({UA!r})
        import psycopg2
        first = seen_pg2()
        importlib.reload(psycopg2)   # rebinds psycopg2._connect to the C original
        second = seen_pg2()
        importlib.reload(psycopg2)
        third = seen_pg2()
        import psycopg
        importlib.reload(psycopg)
        fourth = seen_pg3()
        print(json.dumps([first, second, third, fourth]))
        """
    )
    assert out == [UA, UA, UA, UA]


def test_fork_after_the_hooks_are_armed(pg_dsn: str) -> None:
    """The hook is armed (no client yet); a forked child imports the client and is tagged."""
    out = run(
        f"""
        import ua_autotag
        ua_autotag.instrument({UA!r})
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, seen_pg2().encode())
            os._exit(0)
        os.close(w)
        child = os.read(r, 200).decode()
        os.waitpid(pid, 0)
        print(json.dumps({{"child": child, "parent_has_psycopg2": "psycopg2" in sys.modules}}))
        """
    )
    assert out == {"child": UA, "parent_has_psycopg2": False}


def test_uninstrument_takes_the_finder_off_meta_path() -> None:
    out = run(
        f"""
        import ua_autotag
        from ua_autotag.engine import finder
        ua_autotag.instrument({UA!r})
        armed = any(isinstance(f, finder.Finder) for f in sys.meta_path)
        ua_autotag.uninstrument()
        left = any(isinstance(f, finder.Finder) for f in sys.meta_path)
        print(json.dumps([armed, left]))
        """
    )
    assert out == [True, False]


def test_watched_module_keeps_its_real_loader() -> None:
    """Introspection and resources see the client's own loader, not our wrapper."""
    out = run(
        f"""
        import ua_autotag
        ua_autotag.instrument({UA!r})
        import psycopg2
        loaders = [psycopg2.__loader__, psycopg2.__spec__.loader]
        print(json.dumps([type(loader).__name__ for loader in loaders]))
        """
    )
    assert out == ["SourceFileLoader", "SourceFileLoader"]
