"""The attribution rule holds in Spark's Python workers (real pyspark, local mode, real JVM).

Two product packages and a customer module are written to a temp dir; each product's
``__init__`` calls ``ua_autotag.instrument(<its value>, packages=[__name__])``. A Spark driver
(``spark_job.py``, a subprocess) runs the products' and the customer's functions through
``rdd.mapPartitions``, ``rdd.foreachPartition`` and a Python UDF; the Python workers, forked
by ``pyspark.daemon`` under the JVM, import the packages themselves (cloudpickle sends
functions of importable modules by reference) and open psycopg connections to the local
PostgreSQL. Every assertion is on what the *server* recorded (``pg_stat_activity``).

Two Spark applications, run at once (one driver subprocess, JVM and SparkSession each,
shared by the tests of this module): no process default; the driver under ``ua-autotag
run`` (its default carried by the customer's functions, and in the workers' own
environment through the JVM). A product
closure shipped by value to a worker that never imported the product carries the product's
value with it. Local mode is the quick check; ``test_cluster.py`` proves the same on a real
standalone cluster and a Spark Connect server.

Runs under ``nox -s sparkworkers`` (full pyspark + Java); skips in the main ``tests``
session, which has only ``pyspark-client``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests import pg
from tests.spark_workers import runtime

RUNTIME = runtime.require("Spark worker tests")

ACME = "AcmePartner_DatEngProduct/3.5"
GLOBEX = "GlobexCorp_Loader/2.1"
DEFAULT = "InitechCorp_Platform/7.0"  # the process default of the second variant

JOB = Path(__file__).with_name("spark_job.py")

PRODUCT_INIT = '''\
"""__LABEL__: a partner product that tags only its own connections."""
import ua_autotag

ua_autotag.instrument("__VALUE__", packages=[__name__])
'''

#: the same source for both products' ``jobs`` modules and the customer's module: only
#: the package it lives in (registered or not) differs. Each function's docstring names
#: its module, so no two modules hold *equal* code objects (see TWIN for that case).
JOBS = '''\
"""__LABEL__: functions Spark runs on its Python workers."""
import json
import os
import sys

import psycopg
from psycopg import sql

CODE = "__LABEL__"
APPLICATION_NAME_SQL = "__SQL__"


def _dsn():
    """The test server (__LABEL__)."""
    return os.environ["UA_SPARK_TEST_PG_DSN"]


def observe(where):
    """Open a connection from __LABEL__; what the server recorded as its name."""
    from pyspark import TaskContext

    with psycopg.connect(_dsn()) as conn:
        name = conn.execute(APPLICATION_NAME_SQL).fetchone()[0]
    context = TaskContext.get()
    return {
        "code": CODE,
        "where": where,
        "application_name": name,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "partition": context.partitionId() if context else None,
        "ua_autotag_loaded": "ua_autotag" in sys.modules,
    }


def probe_partition(rows):
    """For rdd.mapPartitions (__LABEL__)."""
    list(rows)
    yield json.dumps(observe("mapPartitions"))


def record_partition(rows):
    """For rdd.foreachPartition (__LABEL__): the server records this connection's name."""
    list(rows)
    insert = sql.SQL(
        "INSERT INTO {} (variant, code, pid, application_name) "
        "SELECT %s, %s, %s, application_name FROM pg_stat_activity "
        "WHERE pid = pg_backend_pid()"
    ).format(sql.Identifier(os.environ["UA_SPARK_TEST_TABLE"]))
    with psycopg.connect(_dsn()) as conn:
        conn.execute(insert, (os.environ["UA_SPARK_TEST_VARIANT"], CODE, os.getpid()))


def udf_probe(value):
    """A Python UDF (__LABEL__)."""
    return json.dumps(observe("udf"))


def closure_probe(where):
    """A closure (__LABEL__): cloudpickle ships it by value, and it names nothing of this
    module that would travel by reference, so running it imports no __LABEL__."""

    def probe(rows):
        from pyspark import TaskContext

        list(rows)
        with psycopg.connect(os.environ["UA_SPARK_TEST_PG_DSN"]) as conn:
            name = conn.execute(APPLICATION_NAME_SQL).fetchone()[0]
        yield json.dumps({
            "code": CODE,
            "where": where,
            "application_name": name,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "partition": TaskContext.get().partitionId(),
            "ua_autotag_loaded": "ua_autotag" in sys.modules,
            "module_name_seen": __name__,
            "package_imported": CODE.partition(".")[0] in sys.modules,
        })

    return probe
'''

#: byte-identical in a product (``acme_dateng/twin.py``) and in customer code
#: (``customer_twin.py``), e.g. a helper both copied from the same place: CPython code
#: objects of the two functions compare (and hash) equal, only their modules differ
TWIN = '''\
import os

import psycopg


def application_name():
    with psycopg.connect(os.environ["UA_SPARK_TEST_PG_DSN"]) as conn:
        return conn.execute("__SQL__").fetchone()[0]
'''


def _write(path: Path, text: str, **subs: str) -> None:
    for key, value in subs.items():
        text = text.replace(f"__{key}__", value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """acme_dateng/ and globex_loader/ (products) and customer_pipeline.py (plain module)."""
    root = tmp_path_factory.mktemp("spark_code")
    for package, label, value in (
        ("acme_dateng", "acme_dateng.jobs", ACME),
        ("globex_loader", "globex_loader.jobs", GLOBEX),
    ):
        _write(root / package / "__init__.py", PRODUCT_INIT, LABEL=package, VALUE=value)
        _write(root / package / "jobs.py", JOBS, LABEL=label, SQL=pg.APPLICATION_NAME_SQL)
    _write(root / "customer_pipeline.py", JOBS, LABEL="customer_pipeline",
           SQL=pg.APPLICATION_NAME_SQL)
    _write(root / "acme_dateng" / "twin.py", TWIN, SQL=pg.APPLICATION_NAME_SQL)
    _write(root / "customer_twin.py", TWIN, SQL=pg.APPLICATION_NAME_SQL)
    return root


@pytest.fixture(scope="module")
def probe_table(pg_dsn: str) -> Iterator[str]:
    """Where foreachPartition records (one table per test run, dropped afterwards)."""
    import psycopg

    table = f"ua_spark_workers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (variant text, code text, pid int, application_name text)"
        )
    yield table
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


class Run:
    """One Spark application (one driver, one JVM, its Python workers) and what it saw."""

    def __init__(self, variant: str, driver_pid: int, observations: List[Dict[str, Any]],
                 recorded: List[Dict[str, Any]], seconds: float) -> None:
        self.variant = variant
        self.driver_pid = driver_pid
        self.observations = observations
        self.recorded = recorded
        self.seconds = seconds

    def names(self, code: str, where: str) -> List[str]:
        found = [o["application_name"] for o in self.observations
                 if o["code"] == code and o["where"] == where]
        assert found, f"no {where} observation of {code} in the {self.variant} run"
        return found

    def recorded_names(self, code: str) -> List[str]:
        found = [r["application_name"] for r in self.recorded if r["code"] == code]
        assert found, f"nothing recorded by {code}'s foreachPartition in the {self.variant} run"
        return found


def _run(variant: str, code_dir: Path, pg_dsn: str, table: str, *launcher: str, **env: str) -> Run:
    import time

    import psycopg

    out = code_dir / f"{variant}.json"
    child_env = runtime.child_env(
        RUNTIME,
        PYTHONPATH=str(code_dir),
        PYSPARK_PYTHON=sys.executable,  # the workers run this interpreter (and its packages)
        PYSPARK_DRIVER_PYTHON=sys.executable,
        UA_SPARK_TEST_PG_DSN=pg_dsn,
        UA_SPARK_TEST_TABLE=table,
        UA_SPARK_TEST_VARIANT=variant,
        **env,
    )
    started = time.monotonic()
    proc = subprocess.run(
        [*launcher, sys.executable, str(JOB), str(out)],
        env=child_env, cwd=str(code_dir), capture_output=True, text=True, timeout=600,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(
            f"the Spark job ({variant}) exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}",
            pytrace=False,
        )
    result = json.loads(out.read_text())
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            f"SELECT code, pid, application_name FROM {table} WHERE variant = %s", (variant,)
        ).fetchall()
    recorded = [{"code": c, "pid": p, "application_name": a} for c, p, a in rows]
    return Run(variant, result["driver_pid"], result["observations"], recorded, seconds)


@pytest.fixture(scope="module")
def runs(code_dir: Path, pg_dsn: str, probe_table: str) -> Dict[str, Run]:
    """The two Spark applications, run at once (each its own driver, JVM and workers):

    * ``no_default``: no process default anywhere, only the products' registrations;
    * ``launcher_default``: the driver started by ``ua-autotag run --user-agent DEFAULT
      --``: its sitecustomize reaches every Python process below it, the workers too.
    """
    from concurrent.futures import ThreadPoolExecutor

    script = str(Path(sys.executable).with_name("ua-autotag"))
    plan: Dict[str, Tuple[Tuple[str, ...], Dict[str, str]]] = {
        "no_default": ((), {}),
        "launcher_default": ((script, "run", "--user-agent", DEFAULT, "--"), {}),
    }
    with ThreadPoolExecutor(len(plan)) as pool:
        futures = {
            variant: pool.submit(_run, variant, code_dir, pg_dsn, probe_table, *launcher, **env)
            for variant, (launcher, env) in plan.items()
        }
        return {variant: future.result() for variant, future in futures.items()}


@pytest.fixture(scope="module")
def no_default(runs: Dict[str, Run]) -> Run:
    return runs["no_default"]


@pytest.fixture(scope="module")
def launcher_default(runs: Dict[str, Run]) -> Run:
    return runs["launcher_default"]


@pytest.fixture(scope="module", params=["no_default", "launcher_default"])
def run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def _default(run: Run) -> str:
    """What customer code gets: the process default, or nothing added."""
    return "" if run.variant == "no_default" else DEFAULT


def test_workers_are_separate_python_processes(run: Run) -> None:
    pids = {o["pid"] for o in run.observations} | {r["pid"] for r in run.recorded}
    assert pids and run.driver_pid not in pids
    # a worker's parent is pyspark.daemon (under the JVM), never the driver
    assert run.driver_pid not in {o["ppid"] for o in run.observations}
    # worker reuse: the same few processes ran every stage (local[2])
    assert len({o["pid"] for o in run.observations if o["where"] == "mapPartitions"}) <= 2


@pytest.mark.parametrize("where", ["mapPartitions", "udf", "called from customer code"])
def test_product_code_carries_its_own_value(run: Run, where: str) -> None:
    assert set(run.names("acme_dateng.jobs", where)) == {ACME}
    assert set(run.names("globex_loader.jobs", where)) == {GLOBEX}


def test_product_foreach_partition_recorded_by_server(run: Run) -> None:
    assert set(run.recorded_names("acme_dateng.jobs")) == {ACME}
    assert set(run.recorded_names("globex_loader.jobs")) == {GLOBEX}


def test_customer_code_untouched_without_default(no_default: Run) -> None:
    for where in ("mapPartitions", "udf", "called from customer code"):
        assert set(no_default.names("customer_pipeline", where)) == {""}, where
    assert set(no_default.names("customer job script", "called from customer code")) == {""}
    assert set(no_default.recorded_names("customer_pipeline")) == {""}


def test_one_worker_process_tags_by_calling_code(run: Run) -> None:
    """In a single worker process, four connections, each with its own code's value."""
    expected = {
        "acme_dateng.jobs": ACME,
        "globex_loader.jobs": GLOBEX,
        "customer_pipeline": _default(run),
        "customer job script": _default(run),
    }
    by_task: Dict[Any, Dict[str, str]] = defaultdict(dict)
    for o in run.observations:
        if o["where"] == "called from customer code" and o["code"] in expected:
            by_task[(o["pid"], o["partition"])][o["code"]] = o["application_name"]
    assert len(by_task) == 4  # one per partition
    for seen in by_task.values():
        assert seen == expected


def test_product_closure_once_the_worker_registered_the_product(run: Run) -> None:
    """A product's closure travels by value; cloudpickle keeps its module's __name__, so
    in a worker where the product registered it is the product's."""
    assert set(run.names("acme_dateng.jobs", "closure, registered")) == {ACME}


def test_product_closure_in_a_fresh_worker(run: Run) -> None:
    """A product's closure (by value: it imports nothing of the product in the worker)
    carries the product's value from where it was handed over (ua_autotag.executor)."""
    observed = [o for o in run.observations if o["where"] == "closure, fresh worker"]
    assert observed and not any(o["package_imported"] for o in observed)
    assert {o["application_name"] for o in observed} == {ACME}


def test_identical_code_in_product_and_customer_module(run: Run) -> None:
    """A helper byte-identical in a product and in customer code (called in that order
    in the same worker process): each connection is still its own module's."""
    assert set(run.names("acme_dateng.twin", "called from customer code")) == {ACME}
    assert set(run.names("customer_twin", "called from customer code")) == {_default(run)}


def test_worker_keeps_nothing_of_finished_customer_tasks(run: Run) -> None:
    tasks = [o for o in run.observations if o["where"] == "payload"]
    assert len(tasks) == 16
    assert max(o["earlier_tasks"] for o in tasks) >= 4  # worker reuse: one process, many tasks
    # the previous task's function may linger in pyspark's worker loop until the next one
    assert max(o["earlier_payloads_alive"] for o in tasks) <= 1, tasks


def test_launcher_default_reaches_every_worker(launcher_default: Run) -> None:
    """`ua-autotag run` puts its sitecustomize on PYTHONPATH; Spark passes the JVM's
    PYTHONPATH on to pyspark.daemon, so every worker is instrumented from its start."""
    customer = [o for o in launcher_default.observations
                if o["code"] in ("customer_pipeline", "customer job script")]
    assert customer and all(o["ua_autotag_loaded"] for o in customer)
    assert {o["application_name"] for o in customer} == {DEFAULT}
    assert set(launcher_default.recorded_names("customer_pipeline")) == {DEFAULT}
    # a product's closure in a worker where the product never ran: the product's value
    # travelled with it (the launcher's default is below a product)
    assert set(launcher_default.names("acme_dateng.jobs", "closure, fresh worker")) == {ACME}


def test_launcher_products_carry_only_their_own(launcher_default: Run) -> None:
    for where in ("mapPartitions", "udf", "called from customer code"):
        assert set(launcher_default.names("acme_dateng.jobs", where)) == {ACME}, where
        assert set(launcher_default.names("globex_loader.jobs", where)) == {GLOBEX}, where
    assert set(launcher_default.recorded_names("acme_dateng.jobs")) == {ACME}
