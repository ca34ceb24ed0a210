"""pyodbc for real: unixODBC + the SQLite ODBC driver, asserting the connection string
the driver manager received (its trace's ``Str In = [...]`` line).

The SQLite ODBC library is registered twice in a private ``odbcinst.ini``: as
"Simba Spark ODBC Driver" (the Databricks driver's name) and as "SQLite3". It ignores
attributes it does not know, so every call really connects. Each scenario runs in a
fresh process (tests/integrations/odbc_probe.py): unixODBC reads ``ODBCSYSINI`` and
its trace settings once per process.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

UA = "AcmePartner_Etl/3.5"  # short: the trace shows at most 128 characters
MINE = "MyApp/2.0"
DBX = "Simba Spark ODBC Driver"
PROBE = Path(__file__).with_name("odbc_probe.py")
STR_IN = re.compile(r"Str In = \[(.*)\]\[length = (\d+)")


def _sqlite_driver() -> str:
    found = sorted(glob.glob("/usr/lib/*/odbc/libsqlite3odbc.so")) + sorted(
        glob.glob("/usr/lib/odbc/libsqlite3odbc.so")
    )
    if not found:
        pytest.fail("the SQLite ODBC driver is missing: run scripts/system-deps.sh "
                    "(Debian packages unixodbc, libsqliteodbc)")
    return found[0]


class Odbc:
    """A private unixODBC configuration with tracing on, and a way to run calls."""

    def __init__(self, root: Path, trace_dir: Path) -> None:
        self.root = root
        # unixODBC 2.3 cuts the TraceFile value at ~62 characters (a longer pytest
        # tmp path silently means no trace at all) and shows at most 128 characters of
        # a connection string: keep the trace and the database under a short path.
        self.short = trace_dir
        self.trace = trace_dir / "trace.log"
        self.db = str(trace_dir / "d.db")
        lib = _sqlite_driver()
        (root / "odbcinst.ini").write_text(
            f"[ODBC]\nTrace=Yes\nTraceFile={self.trace}\n\n"
            f"[{DBX}]\nDriver={lib}\n\n[SQLite3]\nDriver={lib}\n"
        )
        (root / "odbc.ini").write_text(
            f"[Warehouse]\nDriver={DBX}\nDatabase={self.db}\n\n"
            f"[LocalLite]\nDriver=SQLite3\nDatabase={self.db}\n"
        )

    def run(
        self,
        calls: List[Tuple[List[Any], Dict[str, Any]]],
        instrument: Optional[Dict[str, Any]] = None,
        env: Optional[Dict[str, str]] = None,
        import_first: bool = False,
        spans: bool = False,
        whole: bool = True,
    ) -> Tuple[List[str], Dict[str, Any]]:
        """Run ``calls``; return the connection strings traced for them and the report."""
        if self.trace.exists():
            self.trace.unlink()
        spec = {
            "calls": [{"args": a, "kwargs": k} for a, k in calls],
            "instrument": instrument,
            "import_first": import_first,
            "spans": spans,
        }
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
        child_env.pop("DATABRICKS_HOST", None)
        child_env.update(ODBCSYSINI=str(self.root), ODBCINI=str(self.root / "odbc.ini"))
        child_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, str(PROBE), json.dumps(spec)],
            capture_output=True, text=True, timeout=120, env=child_env, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        found = STR_IN.findall(self.trace.read_text()) if self.trace.exists() else []
        for text, length in found:
            assert not whole or len(text) == int(length), f"trace cut the string: {text}"
        return [text for text, _ in found], report


@pytest.fixture
def odbc(tmp_path: Path) -> Iterator[Odbc]:
    trace_dir = Path(tempfile.mkdtemp(prefix="uaodbc", dir="/tmp"))
    yield Odbc(tmp_path, trace_dir)
    shutil.rmtree(trace_dir, ignore_errors=True)


def _ua(mode: str = "append", **extra: Any) -> Dict[str, Any]:
    return {"user_agent": UA, "mode": mode, "integrations": ["pyodbc"], **extra}


# ------------------------------------------------------------------- the Databricks driver


@pytest.mark.parametrize(
    ("mode", "expected_entry"),
    [("append", f"{MINE} {UA}"), ("replace", UA), ("keep", MINE)],
)
def test_users_entry_in_the_string_is_merged_per_mode(
    odbc: Odbc, mode: str, expected_entry: str
) -> None:
    conn = f"Driver={{{DBX}}};UserAgentEntry={MINE};Database={odbc.db}"
    traced, report = odbc.run([([conn], {})], _ua(mode))
    assert report["results"] == [{"ok": True}]
    assert report["status"] == "patched"
    assert traced == [f"Driver={{{DBX}}};UserAgentEntry={expected_entry};Database={odbc.db}"]


@pytest.mark.parametrize("mode", ["append", "replace", "keep"])
def test_no_entry_gets_ours_appended(odbc: Odbc, mode: str) -> None:
    traced, report = odbc.run(
        [([f"Driver={{{DBX}}};Database={odbc.db}"], {}),
         ([f"driver={{{DBX.lower()}}};Database={odbc.db};"], {})],
        _ua(mode),
    )
    assert report["results"] == [{"ok": True}, {"ok": True}]
    assert traced == [
        f"Driver={{{DBX}}};Database={odbc.db};UserAgentEntry={UA}",
        f"driver={{{DBX.lower()}}};Database={odbc.db};UserAgentEntry={UA};",
    ]


def test_keyword_form(odbc: Odbc) -> None:
    traced, report = odbc.run(
        [
            ([f"Driver={{{DBX}}}"], {"Database": odbc.db, "UserAgentEntry": MINE}),
            ([f"Driver={{{DBX}}}"], {"Database": odbc.db}),
            ([], {"Driver": f"{{{DBX}}}", "Database": odbc.db}),
            ([], {"Driver": f"{{{DBX}}}", "Database": odbc.db, "useragententry": "My;App/1"}),
        ],
        _ua(),
    )
    assert [r["ok"] for r in report["results"]] == [True] * 4
    assert traced == [
        f"Driver={{{DBX}}};Database={odbc.db};UserAgentEntry={MINE} {UA};",
        f"Driver={{{DBX}}};UserAgentEntry={UA};Database={odbc.db};",
        f"Driver={{{DBX}}};Database={odbc.db};UserAgentEntry={UA};",
        f"Driver={{{DBX}}};Database={odbc.db};useragententry={{My;App/1 {UA}}};",
    ]


def test_braces_escaping_and_never_twice(odbc: Odbc) -> None:
    traced, _ = odbc.run(
        [
            ([f"Driver={{{DBX}}};UserAgentEntry={{My;App}}}}/1}};Database={odbc.db}"], {}),
            ([f"Driver={{{DBX}}};UserAgentEntry=Tool (x) {UA};Database={odbc.db}"], {}),
            ([f"Driver={{{DBX}}};UserAgentEntry={UA};Database={odbc.db}"], {}),
        ],
        _ua(),
    )
    assert traced == [
        f"Driver={{{DBX}}};UserAgentEntry={{My;App}}}}/1 {UA}}};Database={odbc.db}",
        f"Driver={{{DBX}}};UserAgentEntry=Tool (x) {UA};Database={odbc.db}",
        f"Driver={{{DBX}}};UserAgentEntry={UA};Database={odbc.db}",
    ]


def test_imported_before_instrument(odbc: Odbc) -> None:
    traced, report = odbc.run([([f"Driver={{{DBX}}};Database={odbc.db}"], {})], _ua(),
                              import_first=True)
    assert report["status"] == "patched"
    assert traced == [f"Driver={{{DBX}}};Database={odbc.db};UserAgentEntry={UA}"]


# ------------------------------------------------------------------------ other targets


def test_other_drivers_are_untouched_byte_for_byte(odbc: Odbc) -> None:
    calls: List[Tuple[List[Any], Dict[str, Any]]] = [
        ([f"Driver={{SQLite3}};Database={odbc.db}"], {}),
        ([f"Driver={{SQLite3}};UserAgentEntry={MINE};Database={odbc.db};"], {}),
        ([], {"Driver": "{SQLite3}", "Database": odbc.db}),
        (["DSN=LocalLite"], {}),
        ([f"Driver={{SQLite3}};Server=localhost;Database={odbc.db}"], {}),
    ]
    baseline, report0 = odbc.run(calls, None)
    traced, report = odbc.run(calls, _ua("replace"))
    assert report0["results"] == report["results"] == [{"ok": True}] * 5
    assert report["status"] == "patched"
    assert traced == baseline
    assert not any("AcmePartner" in t for t in traced)


# --------------------------------------------------------------------- the target rule


def test_databricks_server_host_counts(odbc: Odbc) -> None:
    traced, _ = odbc.run(
        [([f"Driver={{SQLite3}};Server=adb-1234.5.azuredatabricks.net;Database={odbc.db}"], {}),
         ([f"Driver={{SQLite3}};Database={odbc.db}"], {"host": "dbc-a1.cloud.databricks.com"}),
         ([f"Driver={{SQLite3}};Host=127.0.0.1;Database={odbc.db}"], {})],
        _ua(rest_hosts=["127.0.0.1"]),
    )
    assert traced == [
        f"Driver={{SQLite3}};Server=adb-1234.5.azuredatabricks.net;Database={odbc.db};"
        f"UserAgentEntry={UA}",
        f"Driver={{SQLite3}};Database={odbc.db};UserAgentEntry={UA};"
        "server=dbc-a1.cloud.databricks.com;",
        f"Driver={{SQLite3}};Host=127.0.0.1;Database={odbc.db};UserAgentEntry={UA}",
    ]


def test_dsn_rules(odbc: Odbc) -> None:
    calls: List[Tuple[List[Any], Dict[str, Any]]] = [(["DSN=Warehouse"], {}),
                                                    (["DSN=LocalLite"], {})]
    traced, report = odbc.run(calls, _ua())
    assert report["results"] == [{"ok": True}] * 2
    assert traced == [f"DSN=Warehouse;UserAgentEntry={UA}", "DSN=LocalLite"]
    traced, _ = odbc.run(calls, _ua(), env={"UA_AUTOTAG_ODBC_DSNS": "other, locallite"})
    assert traced == [f"DSN=Warehouse;UserAgentEntry={UA}", f"DSN=LocalLite;UserAgentEntry={UA}"]


def test_extra_driver_patterns_from_env(odbc: Odbc) -> None:
    traced, _ = odbc.run([([f"Driver={{SQLite3}};Database={odbc.db}"], {})], _ua(),
                         env={"UA_AUTOTAG_ODBC_DRIVERS": "sqlite3"})
    assert traced == [f"Driver={{SQLite3}};Database={odbc.db};UserAgentEntry={UA}"]


# ------------------------------------------------------------------ spans, errors


def test_one_span_per_tagged_connection_none_for_others(odbc: Odbc) -> None:
    _, report = odbc.run(
        [([f"Driver={{{DBX}}};Host=dbc-a1.cloud.databricks.com;Port=443;PWD=s3cret;"
           f"Database={odbc.db}"], {}),
         ([f"Driver={{SQLite3}};PWD=s3cret;Database={odbc.db}"], {})],
        _ua(), spans=True, whole=False,
    )
    assert report["results"] == [{"ok": True}] * 2
    (span,) = report["spans"]
    assert span["name"] == "connect dbc-a1.cloud.databricks.com:443"
    assert span["kind"] == "SpanKind.CLIENT"
    attrs = span["attributes"]
    assert attrs["db.system.name"] == "databricks"
    assert attrs["server.address"] == "dbc-a1.cloud.databricks.com"
    assert attrs["server.port"] == 443
    assert attrs["user_agent.original"] == UA
    assert attrs["ua_autotag.integration"] == "pyodbc"
    assert not any("s3cret" in str(v) for v in attrs.values())


def test_connect_errors_propagate_unchanged(odbc: Odbc) -> None:
    calls: List[Tuple[List[Any], Dict[str, Any]]] = [
        ([f"Driver={{{DBX}}};Database={odbc.short}/missing/x.db"], {})]
    _, plain = odbc.run(calls, None)
    traced, tagged = odbc.run(calls, _ua(), spans=True)
    assert plain["results"][0]["ok"] is False
    assert tagged["results"] == plain["results"]
    assert traced == [f"Driver={{{DBX}}};Database={odbc.short}/missing/x.db;"
                      f"UserAgentEntry={UA}"]
    (span,) = tagged["spans"]
    assert span["status"] == "StatusCode.ERROR"


def test_uninstrument_restores_connect() -> None:
    import pyodbc

    import ua_autotag

    original = pyodbc.connect
    ua_autotag.instrument(UA, integrations=["pyodbc"])
    assert pyodbc.connect is not original
    ua_autotag.uninstrument()
    assert pyodbc.connect is original


# ------------------------------------------------------- the merge rule, all inputs

_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
_KEYS = st.sampled_from(["Driver", "Host", "PWD", "UID", "Database", "UserAgentEntry",
                         "useragententry"])


@given(pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=6),
       mode=st.sampled_from(["append", "replace", "keep"]))
def test_odbc_merge_keeps_every_other_attribute_and_ours_once(
    pairs: List[Tuple[str, str]], mode: str
) -> None:
    from ua_autotag.merge.odbc import merge_odbc_attribute, odbc_attributes, odbc_quote

    text = ";".join(f"{k}={odbc_quote(v)}" for k, v in pairs)
    merged = merge_odbc_attribute(text, "UserAgentEntry", UA, mode)
    before = odbc_attributes(text)
    after = odbc_attributes(merged)
    others = [(a.key, a.value) for a in before if a.key.lower() != "useragententry"]
    assert [(a.key, a.value) for a in after if a.key.lower() != "useragententry"] == others
    entries = [a.value for a in after if a.key.lower() == "useragententry"]
    callers = [a.value.strip() for a in before if a.key.lower() == "useragententry"]
    assert entries, "an entry is always there"
    for value, caller in zip(entries, callers or [""]):
        if mode == "keep" and caller:
            assert value.strip() == caller  # an explicit value is left alone
        else:
            assert value.split().count(UA) == 1  # ours, exactly once
            if mode == "append" and caller and UA not in caller.split():
                assert value == f"{caller} {UA}"
