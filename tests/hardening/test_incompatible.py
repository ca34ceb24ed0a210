"""Odd client versions: a renamed patch target, a version outside the range, missing clients.

Each case is a fresh interpreter with a real client module in an unexpected shape. The
application's own connect must still work (untagged), with one warning and a status row
that says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"


def _run(code: str, tmp_path: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    env["PGAPPNAME"] = ""
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    script = tmp_path / "case.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def test_renamed_patch_target_warns_once_and_connect_still_works(
    tmp_path: Path, pg_dsn: str
) -> None:
    # psycopg2 "next": its C entry point renamed, connect() rebound to the new name
    result = _run(
        f"""
        import json, psycopg2, psycopg2.extensions as ext
        real = psycopg2._connect
        del psycopg2._connect
        psycopg2._connect_v3 = real
        def connect(dsn=None, connection_factory=None, cursor_factory=None, **kwargs):
            return psycopg2._connect_v3(ext.make_dsn(dsn, **kwargs),
                                        connection_factory=connection_factory)
        psycopg2.connect = connect

        import ua_autotag
        ua_autotag.instrument({UA!r}, spans=False)
        conn = psycopg2.connect({pg.DSN!r})
        cur = conn.cursor(); cur.execute({pg.APPLICATION_NAME_SQL!r})
        row = ua_autotag.status()["psycopg2"]
        print(json.dumps({{"app": cur.fetchone()[0], "state": row.state, "reason": row.reason}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["app"] == ""  # untagged, but connected
    assert out["state"] == "failed" and "_connect" in out["reason"]
    warnings = [line for line in result.stderr.splitlines() if "ua_autotag" in line]
    assert len(warnings) == 1 and "psycopg2" in warnings[0]


def test_version_outside_supported_range_is_left_alone(tmp_path: Path, pg_dsn: str) -> None:
    # a real installed-distribution record claiming a future major version, found first
    from ua_autotag.engine.patcher import load_spec

    dist = load_spec("psycopg").distributions[0]
    site = tmp_path / "site"
    info = site / f"{dist.replace('-', '_')}-99.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 99.0\n")
    result = _run(
        f"""
        import json, sys
        sys.path.insert(0, {str(site)!r})
        import ua_autotag, psycopg
        ua_autotag.instrument({UA!r}, spans=False)
        with psycopg.connect({pg.DSN!r}) as conn:
            app = conn.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0]
        row = ua_autotag.status()["psycopg"]
        print(json.dumps({{"app": app, "state": row.state, "reason": row.reason,
                           "version": row.version}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["app"] == ""
    assert out["state"] == "unsupported" and "99.0" in out["reason"]
    assert "outside the supported range" in out["reason"]
    assert sum("ua_autotag" in line for line in result.stderr.splitlines()) == 1


def test_no_import_time_crash_when_clients_are_missing(tmp_path: Path) -> None:
    """Every client hidden: instrument, import attempts fail as they would without us."""
    names = [
        "psycopg",
        "psycopg2",
        "asyncpg",
        "databricks",
        "pyodbc",
        "jaydebeapi",
        "requests",
        "httpx",
        "urllib3",
        "aiohttp",
        "pyspark",
        "sqlalchemy",
    ]
    result = _run(
        f"""
        import sys, json
        for name in {names!r}:
            sys.modules[name] = None  # makes `import name` raise ImportError
        import ua_autotag
        ua_autotag.instrument({UA!r})
        failures = []
        for name in {names!r}:
            try:
                __import__(name)
            except ImportError:
                failures.append(name)
        print(json.dumps({{"import_errors": failures,
                           "states": sorted({{r.state for r in ua_autotag.status().values()}})}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(out["import_errors"]) == sorted(names)
    assert out["states"] == ["waiting"]
    assert "Traceback" not in result.stderr


def test_one_missing_target_leaves_the_intact_paths_tagged(tmp_path: Path, pg_dsn: str) -> None:
    """``AsyncConnection.connect`` gone (a psycopg "next"): sync connections are still
    tagged, one warning names what is missing, status says partial."""
    result = _run(
        f"""
        import asyncio, json, psycopg
        del psycopg.AsyncConnection.connect
        import ua_autotag
        ua_autotag.instrument({UA!r}, spans=False)
        with psycopg.connect({pg.DSN!r}) as conn:
            app = conn.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0]
        row = ua_autotag.status()["psycopg"]
        print(json.dumps({{"app": app, "state": row.state, "missing": list(row.missing)}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {
        "app": UA,
        "state": "partial",
        "missing": ["psycopg.AsyncConnection.connect"],
    }
    warnings = [line for line in result.stderr.splitlines() if "ua_autotag" in line]
    assert len(warnings) == 1 and "psycopg.AsyncConnection.connect" in warnings[0]


def test_a_fallback_layer_tags_when_the_private_patch_point_is_gone(
    tmp_path: Path, pg_dsn: str
) -> None:
    """asyncpg without ``connect_utils._connect`` (a rename): the public ``connect``,
    left unwrapped while ``_connect`` exists, is wrapped instead and tags; status partial."""
    result = _run(
        f"""
        import asyncio, json, types, asyncpg, asyncpg.connect_utils, asyncpg.connection
        real = asyncpg.connect_utils._connect
        del asyncpg.connect_utils._connect
        # the public connect of a release where _connect has another name: the same code,
        # its connect_utils look-up answering with the renamed function
        source = asyncpg.connection.connect
        scope = {{**source.__globals__, "connect_utils": types.SimpleNamespace(_connect=real)}}
        connect = types.FunctionType(
            source.__code__, scope, source.__name__, source.__defaults__, source.__closure__
        )
        connect.__kwdefaults__ = source.__kwdefaults__
        asyncpg.connection.connect = connect
        import ua_autotag
        ua_autotag.instrument({UA!r}, spans=False)
        wrapped = vars(asyncpg.connection)["connect"] is not connect
        async def main():
            conn = await asyncpg.connection.connect({pg.URI!r})
            try:
                return await conn.fetchval({pg.APPLICATION_NAME_SQL!r})
            finally:
                await conn.close()
        app = asyncio.run(main())
        row = ua_autotag.status()["asyncpg"]
        print(json.dumps({{"app": app, "state": row.state, "wrapped": wrapped}}))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"app": UA, "state": "partial", "wrapped": True}
