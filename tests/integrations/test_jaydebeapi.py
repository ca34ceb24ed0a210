"""jaydebeapi for real: a JVM (JPype), java.sql.DriverManager and a JDBC driver that
records the URL and properties it is handed.

The Databricks JDBC driver cannot be had from the package registries this project
reaches (PyPI, Debian, npm: it is published on Maven Central only), so the test
compiles a small ``java.sql.Driver`` (javac, JDK 17) that accepts
``jdbc:databricks:``, ``jdbc:spark:`` and ``jdbc:other:`` URLs, records
``url`` + properties in the JVM and returns a do-nothing ``Connection`` proxy. It
stands in for the driver the way the HTTP header recorder stands in for a workspace:
everything between ``jaydebeapi.connect`` and ``Driver.connect`` is the real code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import pytest

import ua_autotag

UA = "AcmePartner_DatEngProduct/3.5"
MINE = "MyApp/2.0"
DRIVER_CLASS = "uaautotag.RecordingDriver"
DBX_URL = "jdbc:databricks://adb-1.2.azuredatabricks.net:443/default;transportMode=http;ssl=1"

JAVA = textwrap.dedent(
    """
    package uaautotag;

    import java.lang.reflect.Proxy;
    import java.sql.*;
    import java.util.*;
    import java.util.logging.Logger;

    public class RecordingDriver implements Driver {
        public static final List<String> RECORDS = Collections.synchronizedList(new ArrayList<>());
        static {
            try { DriverManager.registerDriver(new RecordingDriver()); }
            catch (SQLException e) { throw new RuntimeException(e); }
        }
        public boolean acceptsURL(String url) {
            return url.startsWith("jdbc:databricks:") || url.startsWith("jdbc:spark:")
                || url.startsWith("jdbc:other:");
        }
        public Connection connect(String url, Properties info) throws SQLException {
            if (!acceptsURL(url)) return null;
            if (url.contains(";fail=1")) {
                throw new SQLException("refused by the test driver", "08001");
            }
            StringBuilder sb = new StringBuilder(url);
            for (String k : new TreeSet<>(info.stringPropertyNames())) {
                sb.append('\\n').append(k).append('=').append(info.getProperty(k));
            }
            RECORDS.add(sb.toString());
            return (Connection) Proxy.newProxyInstance(
                Connection.class.getClassLoader(), new Class<?>[] {Connection.class},
                (proxy, method, args) -> method.getReturnType() == boolean.class ? false : null);
        }
        public DriverPropertyInfo[] getPropertyInfo(String url, Properties info) {
            return new DriverPropertyInfo[0];
        }
        public int getMajorVersion() { return 1; }
        public int getMinorVersion() { return 0; }
        public boolean jdbcCompliant() { return false; }
        public Logger getParentLogger() { return Logger.getGlobal(); }
    }
    """
)


@pytest.fixture(scope="session")
def driver_jar(tmp_path_factory: pytest.TempPathFactory) -> str:
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not (javac and jar):
        pytest.fail("javac/jar missing: install a JDK (Debian openjdk-17-jdk-headless)")
    root = tmp_path_factory.mktemp("jdbc")
    src = root / "uaautotag" / "RecordingDriver.java"
    src.parent.mkdir()
    src.write_text(JAVA)
    subprocess.run([javac, "--release", "11", "-d", str(root / "classes"), str(src)],
                   check=True, capture_output=True, timeout=180)
    path = root / "recording-driver.jar"
    subprocess.run([jar, "cf", str(path), "-C", str(root / "classes"), "."], check=True,
                   capture_output=True, timeout=60)
    return str(path)


@pytest.fixture
def jdbc(driver_jar: str) -> Any:
    """``connect(url, driver_args)`` -> what the driver received (url, properties)."""
    import jaydebeapi

    def connect(url: str, driver_args: Any = None, via: Any = None) -> Dict[str, Any]:
        import jpype

        fn = via or jaydebeapi.connect
        conn = fn(DRIVER_CLASS, url, driver_args, [driver_jar])
        conn.close()
        records = jpype.JClass(DRIVER_CLASS).RECORDS
        assert records.size() == 1, "expected exactly one connect at the driver"
        last = str(records.get(0))
        records.clear()
        url_seen, *props = last.split("\n")
        return {"url": url_seen, "props": dict(p.split("=", 1) for p in props)}

    return connect


def _instrument(mode: str = "append") -> None:
    ua_autotag.instrument(UA, mode=mode, integrations=["jaydebeapi"])


# -------------------------------------------------------------------------- tagging


@pytest.mark.parametrize("mode", ["append", "replace", "keep"])
def test_url_without_entry_gets_ours(jdbc: Any, mode: str) -> None:
    _instrument(mode)
    seen = jdbc(DBX_URL, {"UID": "token", "PWD": "dapi-secret"})
    assert seen == {"url": f"{DBX_URL};UserAgentEntry={UA}",
                    "props": {"UID": "token", "PWD": "dapi-secret"}}
    assert ua_autotag.status()["jaydebeapi"].state == "patched"


@pytest.mark.parametrize(
    ("mode", "entry"), [("append", f"{MINE} {UA}"), ("replace", UA), ("keep", MINE)]
)
def test_users_entry_in_url_merged_per_mode(jdbc: Any, mode: str, entry: str) -> None:
    _instrument(mode)
    url = f"jdbc:databricks://h.cloud.databricks.com:443/default;UserAgentEntry={MINE};ssl=1"
    seen = jdbc(url, ["token", "dapi-secret"])
    assert seen["url"] == (
        f"jdbc:databricks://h.cloud.databricks.com:443/default;UserAgentEntry={entry};ssl=1"
    )
    assert seen["props"] == {"user": "token", "password": "dapi-secret"}


@pytest.mark.parametrize(
    ("mode", "entry"), [("append", f"{MINE} {UA}"), ("replace", UA), ("keep", MINE)]
)
def test_users_entry_in_properties_merged_per_mode(jdbc: Any, mode: str, entry: str) -> None:
    _instrument(mode)
    seen = jdbc(DBX_URL, {"useragententry": MINE, "PWD": "dapi-secret"})
    assert seen == {"url": DBX_URL, "props": {"useragententry": entry, "PWD": "dapi-secret"}}


def test_spark_url_and_no_duplicates(jdbc: Any) -> None:
    _instrument()
    url = "jdbc:spark://h.gcp.databricks.com:443/default;transportMode=http;"
    assert jdbc(url)["url"] == f"{url}UserAgentEntry={UA};"
    already = f"jdbc:spark://h.gcp.databricks.com:443/default;UserAgentEntry={UA}"
    assert jdbc(already)["url"] == already
    bare = "jdbc:spark://h.gcp.databricks.com:443/default"
    assert jdbc(bare)["url"] == f"{bare};UserAgentEntry={UA}"


def test_early_bound_connect_is_covered(jdbc: Any) -> None:
    from jaydebeapi import connect

    _instrument()
    assert jdbc(DBX_URL, via=connect)["url"] == f"{DBX_URL};UserAgentEntry={UA}"


def test_other_urls_are_untouched(jdbc: Any) -> None:
    url = "jdbc:other://db.example.com:5432/x;UserAgentEntry=Mine/1"
    props = {"user": "u", "password": "p", "UserAgentEntry": "Mine/1"}
    baseline = jdbc(url, dict(props))
    _instrument("replace")
    assert jdbc(url, dict(props)) == baseline
    assert baseline == {"url": url, "props": props}


# ------------------------------------------------------------------ spans and errors


def test_one_span_per_databricks_connection(jdbc: Any, spans: Any) -> None:
    _instrument()
    jdbc(DBX_URL, {"PWD": "dapi0123456789abcdef0123"})
    jdbc("jdbc:other://db.example.com/x")
    (span,) = spans.get_finished_spans()
    assert span.name == "connect adb-1.2.azuredatabricks.net:443"
    attrs = dict(span.attributes or {})
    assert attrs["db.system.name"] == "databricks"
    assert attrs["server.port"] == 443
    assert attrs["user_agent.original"] == UA
    assert attrs["ua_autotag.integration"] == "jaydebeapi"
    assert not any("dapi0123" in str(v) for v in attrs.values())


def test_driver_errors_propagate_unchanged(jdbc: Any, spans: Any) -> None:
    errors: List[Any] = []
    for instrumented in (False, True):
        if instrumented:
            _instrument()
        with pytest.raises(Exception) as info:
            jdbc(f"{DBX_URL};fail=1")
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert "refused by the test driver" in errors[0][1]
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"


def test_uninstrument_restores(jdbc: Any) -> None:
    import jaydebeapi

    original = jaydebeapi._jdbc_connect
    _instrument()
    assert jaydebeapi._jdbc_connect is not original
    ua_autotag.uninstrument()
    assert jaydebeapi._jdbc_connect is original
    assert jdbc(DBX_URL)["url"] == DBX_URL


def test_scoped_override_and_retarget(jdbc: Any) -> None:
    _instrument()
    with ua_autotag.user_agent("Other_Product/2"):
        assert jdbc(DBX_URL)["url"] == f"{DBX_URL};UserAgentEntry=Other_Product/2"
    ua_autotag.instrument("Third_Product/3", integrations=["jaydebeapi"])
    assert jdbc(DBX_URL)["url"] == f"{DBX_URL};UserAgentEntry=Third_Product/3"


IMPORT_AFTER = r"""
import sys
import ua_autotag
ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", integrations=["jaydebeapi"])
assert "jaydebeapi" not in sys.modules
import jaydebeapi, jpype
conn = jaydebeapi.connect("uaautotag.RecordingDriver", sys.argv[1], {"PWD": "x"}, [sys.argv[2]])
conn.close()
print(ua_autotag.status()["jaydebeapi"].state)
print(str(jpype.JClass("uaautotag.RecordingDriver").RECORDS.get(0)).split("\n")[0])
"""


def test_imported_after_instrument(driver_jar: str) -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORT_AFTER, DBX_URL, driver_jar],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["patched", f"{DBX_URL};UserAgentEntry={UA}"]
