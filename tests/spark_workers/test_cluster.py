"""The value travels with the Spark work, on a real cluster (standalone and Spark Connect).

A standalone master and worker and a Spark Connect server (pyspark 4's bundled
``SparkConnectServer``) are started once for this module, each from the full pyspark
package with a clean environment (``env -i``), Python worker reuse off (``cluster.py``).
Driver programs (``cluster_job.py``) run against them as applications do; every function
they hand to Spark opens a psycopg connection on an executor, in a fresh Python worker, and
reports what PostgreSQL recorded as its ``application_name`` (``pg_stat_activity`` of that
very connection). The product package ``acme_dateng`` (registered with
``packages=[__name__]`` on import) reaches the executors as a ``--py-files`` zip, so its
module-level functions can be imported there; its nested functions and lambdas travel by
value and import nothing of it.

Runs under ``nox -s sparkworkers`` (full pyspark + Java); skips in the main ``tests``
session, which has only ``pyspark-client``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests import pg
from tests.spark_workers import cluster, runtime

RUNTIME = runtime.require("Spark cluster tests")

ACME = "AcmePartner_DatEngProduct/3.5"
CUSTOMER = "Customer_App/1.0"
JOB = Path(__file__).with_name("cluster_job.py")

PRODUCT_INIT = '''\
"""acme_dateng: a partner product that tags only its own connections."""
import ua_autotag

ua_autotag.instrument("__VALUE__", packages=[__name__])
'''

#: the product's functions. ``observer`` builds a self-contained closure: nested functions
#: built from it travel by value and name nothing of this package by reference, so running
#: them on an executor imports nothing of acme_dateng (``product_imported`` says so).
PRODUCT_JOBS = '''\
"""acme_dateng.jobs: functions the product hands to Spark."""
import json
import os
import sys

DSN = "__DSN__"
SQL = "__SQL__"


def observer(case):
    def observe():
        import psycopg

        with psycopg.connect(DSN) as conn:
            name = conn.execute(SQL).fetchone()[0]
        return json.dumps({
            "case": case,
            "code": "acme_dateng",
            "application_name": name,
            "pid": os.getpid(),
            "ua_loaded": "ua_autotag" in sys.modules,
            "product_imported": "acme_dateng" in sys.modules,
            "env": sorted(k for k in os.environ
                          if k.startswith(("UA_AUTOTAG", "PGAPPNAME", "SPARK_CONNECT_USER"))),
        })

    return observe


def probe_partition(rows):
    """Module level: shipped by reference (the worker imports acme_dateng)."""
    list(rows)
    yield observer("product module-level")()


def closure(case):
    observe = observer(case)

    def probe(rows):
        list(rows)
        yield observe()

    return probe


def lambda_probe(case):
    observe = observer(case)
    return lambda _: observe()


def value_probe(case):
    observe = observer(case)
    return lambda _: observe()


def run_partitions(rdd, func):
    """The product hands over a function it was given (the customer's callback)."""
    return rdd.mapPartitions(func)


def pandas_probe(case):
    from pyspark.sql import functions as F

    observe = observer(case)

    def probe(values):
        import pandas as pd

        return pd.Series([observe() for _ in range(len(values))])

    return F.pandas_udf(probe, "string")


def grouped(case):
    observe = observer(case)

    def per_group(pdf):
        import pandas as pd

        return pd.DataFrame({"observation": [observe()]})

    return per_group


def udtf_probe(case):
    """A Python UDTF whose handler class is the product's (nested: by value)."""
    from pyspark.sql.functions import udtf

    observe = observer(case)

    class Probe:
        def eval(self, x):
            yield (observe(),)

    return udtf(Probe, returnType="observation: string")


def with_udf(df, case):
    from pyspark.sql import functions as F

    observe = observer(case)
    return df.select(F.udf(lambda _: observe(), "string")("id"))
'''


def _write(path: Path, text: str, **subs: str) -> None:
    for key, value in subs.items():
        text = text.replace(f"__{key}__", value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Path:
    root = tmp_path_factory.mktemp("cluster_code")
    _write(root / "acme_dateng" / "__init__.py", PRODUCT_INIT, VALUE=ACME)
    _write(root / "acme_dateng" / "jobs.py", PRODUCT_JOBS, DSN=pg_dsn, SQL=pg.APPLICATION_NAME_SQL)
    with zipfile.ZipFile(root / "acme_dateng.zip", "w") as z:
        for name in ("__init__.py", "jobs.py"):
            z.write(root / "acme_dateng" / name, f"acme_dateng/{name}")
    return root


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python for executors without ua-autotag: a venv holding psycopg only (linked from
    this one's site-packages: no download)."""
    import importlib.util
    import os
    import sysconfig

    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python = str(venv / "bin" / "python")
    target = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    ).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for name in ("psycopg", "psycopg_binary", "typing_extensions"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        origin = Path(spec.origin)
        path = origin.parent if origin.name == "__init__.py" else origin
        (target / path.name).symlink_to(path)
    for libs in here.glob("psycopg_binary*.libs"):
        (target / libs.name).symlink_to(libs)
    clean = {"PATH": os.environ["PATH"]}
    probe = subprocess.run([python, "-c", "import ua_autotag"], capture_output=True, env=clean)
    assert probe.returncode != 0, "the bare executor Python must not have ua-autotag"
    subprocess.run([python, "-c", "import psycopg"], check=True, env=clean)
    return python


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, str]]:
    """(standalone master URL, Spark Connect URL), both started once, stopped at the end."""
    home = tmp_path_factory.mktemp("spark_cluster")
    standalone = cluster.Standalone(RUNTIME, home / "standalone")
    connect = cluster.ConnectServer(RUNTIME, home / "connect", sys.executable)
    try:
        standalone.start_worker()
        standalone.wait()
        connect.wait()
        yield standalone.url, connect.url
    finally:
        connect.stop()
        standalone.stop()


@pytest.fixture(scope="module")
def table(pg_dsn: str) -> Iterator[str]:
    """Where the streaming ``foreach`` writer records (dropped afterwards)."""
    import psycopg

    name = f"ua_spark_cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (variant text, application_name text)")
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


Observations = Dict[str, List[Dict[str, Any]]]


def _run(mode: str, master: str, code_dir: Path, pg_dsn: str, table: str,
         executor_python: str, launcher: bool) -> Observations:
    out = code_dir / f"{mode}.json"
    env = runtime.child_env(
        RUNTIME,
        PYTHONPATH=str(code_dir),
        PYSPARK_PYTHON=executor_python,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        UA_SPARK_TEST_PG_DSN=pg_dsn,
        UA_SPARK_TEST_TABLE=table,
        UA_SPARK_TEST_PYFILES=str(code_dir / "acme_dateng.zip"),
    )
    command = [sys.executable, str(JOB), mode, master, str(out)]
    if launcher:
        script = str(Path(sys.executable).with_name("ua-autotag"))
        command = [script, "run", "--user-agent", CUSTOMER, "--", *command]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, cwd=str(code_dir), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"the {mode} job exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-8000:]}", pytrace=False)
    by_case: Observations = {"_seconds": [{"seconds": time.monotonic() - started}]}
    for o in json.loads(out.read_text()):
        by_case.setdefault(o["case"], []).append(o)
    return by_case


@pytest.fixture(scope="module")
def runs(servers: Tuple[str, str], code_dir: Path, pg_dsn: str, table: str,
         bare_python: str) -> Dict[str, Observations]:
    """Every application at once (the worker offers 6 cores, 2 per application)."""
    standalone, connect = servers
    plan = {
        "launcher": (standalone, sys.executable, True),
        "connect": (connect, sys.executable, True),
        "products": (standalone, sys.executable, False),
        "bare": (standalone, bare_python, True),
    }
    with ThreadPoolExecutor(len(plan)) as pool:
        futures = {
            mode: pool.submit(_run, mode, master, code_dir, pg_dsn, table, python, launcher)
            for mode, (master, python, launcher) in plan.items()
        }
        found = {mode: future.result() for mode, future in futures.items()}
    # what each case observed (shown with pytest -s; the tests below assert on it)
    for mode, by_case in found.items():
        for case, seen in by_case.items():
            values = sorted({repr(o.get("application_name", o.get("seconds"))) for o in seen})
            print(f"[{mode}] {case}: {', '.join(values)}")
    return found


def names(runs: Dict[str, Observations], mode: str, case: str) -> set:
    found = runs[mode].get(case)
    assert found, f"no observation {case!r} in the {mode} run: {sorted(runs[mode])}"
    return {o["application_name"] for o in found}


def test_executors_are_fresh_and_clean(runs: Dict[str, Observations]) -> None:
    """Nothing of ours in any executor's environment; a new Python worker per task."""
    for mode, by_case in runs.items():
        observed = [o for case, found in by_case.items() if not case.startswith("_")
                    for o in found if "env" in o]
        assert observed, mode
        assert all(o["env"] == [] for o in observed), (mode, observed)
        # no Python worker ran tasks of two stages: each task met a fresh one
        owners: Dict[int, str] = {}
        for o in observed:
            assert owners.setdefault(o["pid"], o["case"]) == o["case"], (mode, o)


# ----------------------------------------------------------------- the table


def test_launcher_customer_map_partitions(runs: Dict[str, Observations]) -> None:
    assert names(runs, "launcher", "customer mapPartitions") == {CUSTOMER}
    assert names(runs, "launcher", "customer flatMap") == {CUSTOMER}


def test_instrument_in_code_customer_udf(runs: Dict[str, Observations]) -> None:
    assert names(runs, "products", "customer udf") == {CUSTOMER}
    assert names(runs, "products", "customer map") == {CUSTOMER}


def test_a_command_sent_as_a_broadcast(runs: Dict[str, Observations]) -> None:
    """Over 1 MB the pickled command travels as a broadcast variable: unpickled the same."""
    assert names(runs, "products", "customer large command") == {CUSTOMER}


def test_product_module_level_function(runs: Dict[str, Observations]) -> None:
    assert names(runs, "launcher", "product module-level") == {ACME}
    assert all(o["product_imported"] for o in runs["launcher"]["product module-level"])


def test_product_nested_function_in_a_fresh_worker(runs: Dict[str, Observations]) -> None:
    for mode, case in (("launcher", "product nested"), ("launcher", "product lambda"),
                       ("products", "product nested")):
        found = runs[mode][case]
        assert not any(o["product_imported"] for o in found), (mode, case)
        assert names(runs, mode, case) == {ACME}, (mode, case)


def test_connect_customer_udf_under_the_launcher(runs: Dict[str, Observations]) -> None:
    assert names(runs, "connect", "connect customer udf") == {CUSTOMER}
    assert names(runs, "connect", "connect customer pandas_udf") == {CUSTOMER}


def test_connect_product_nested_udf(runs: Dict[str, Observations]) -> None:
    for case in ("connect product nested udf", "connect product hands over udf"):
        assert not any(o["product_imported"] for o in runs["connect"][case]), case
        assert names(runs, "connect", case) == {ACME}, case


# ------------------------------------------------------------------------ and also


def test_customer_function_with_only_products_registered(runs: Dict[str, Observations]) -> None:
    assert names(runs, "products", "customer mapPartitions") == {""}


def test_product_rdd_collected_by_customer_keeps_the_product(
    runs: Dict[str, Observations],
) -> None:
    """The product handed the customer's callback over; the customer's collect() ran it."""
    assert names(runs, "launcher", "product hands over") == {ACME}


def test_executor_without_ua_autotag_runs_untagged(runs: Dict[str, Observations]) -> None:
    bare = runs["bare"]
    assert bare["result"][0]["value"] == 60
    for case in ("customer mapPartitions", "product nested"):
        assert names(runs, "bare", case) == {""}, case
        assert not any(o["ua_loaded"] for o in bare[case]), case


def test_pandas_udfs(runs: Dict[str, Observations]) -> None:
    assert names(runs, "launcher", "customer pandas_udf") == {CUSTOMER}
    assert names(runs, "launcher", "product pandas_udf") == {ACME}
    assert names(runs, "launcher", "product applyInPandas") == {ACME}


def test_python_udtfs(runs: Dict[str, Observations]) -> None:
    assert names(runs, "launcher", "customer udtf") == {CUSTOMER}
    assert names(runs, "connect", "connect product udtf") == {ACME}


def test_streaming_foreach_writer(runs: Dict[str, Observations], pg_dsn: str, table: str) -> None:
    import psycopg

    assert "launcher" in runs
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            f"SELECT application_name FROM {table} WHERE variant = %s",
            ("customer streaming foreach",),
        ).fetchall()
    assert len(rows) == 2 and {r[0] for r in rows} == {CUSTOMER}, rows
