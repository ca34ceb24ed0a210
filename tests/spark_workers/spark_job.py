"""The Spark driver program the spark_workers tests run as a subprocess (not a test module).

Usage: ``python spark_job.py OUT.json`` with the product packages (``acme_dateng``,
``globex_loader``) and the customer module (``customer_pipeline``) on PYTHONPATH and
``UA_SPARK_TEST_PG_DSN`` / ``UA_SPARK_TEST_TABLE`` in the environment.

Local mode (``local[2]``): the JVM runs the tasks and starts real Python worker processes
(``pyspark.daemon`` forks them). cloudpickle sends the functions from the importable
modules by reference, so a worker imports ``acme_dateng.jobs`` -- and with it
``acme_dateng/__init__.py``, which calls ``ua_autotag.instrument(...)`` -- in the worker
itself. ``customer_code_calling_everything`` is defined here, in ``__main__``, so it
travels by value, as the lambdas and functions of a customer's job script do; so does
the closure ``acme_dateng.jobs.closure_probe`` returns (run first, in fresh workers, and
again at the end).

Writes ``{"driver_pid": ..., "observations": [...]}`` to OUT.json: one observation per
connection a worker opened, with what PostgreSQL recorded as its application_name.
"""

from __future__ import annotations

import json
import os
import sys

import acme_dateng.jobs
import acme_dateng.twin
import customer_pipeline
import customer_twin
import globex_loader.jobs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

MODULES = (acme_dateng.jobs, globex_loader.jobs, customer_pipeline)


def customer_code_calling_everything(rows):  # type: ignore[no-untyped-def]
    """Customer code (pickled by value): in ONE worker process, connections opened by each
    product's code, by a customer module, by this function itself, and by two
    byte-identical helpers, one in a product, one in customer code."""
    import psycopg
    from pyspark import TaskContext

    list(rows)
    for module in MODULES:
        yield json.dumps(module.observe("called from customer code"))
    with psycopg.connect(os.environ["UA_SPARK_TEST_PG_DSN"]) as conn:
        name = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()[0]
    found = [("customer job script", name)]
    # byte-identical helpers, the product's first, then the customer's copy
    found += [(m.__name__, m.application_name()) for m in (acme_dateng.twin, customer_twin)]
    for code, name in found:
        yield json.dumps(
            {
                "code": code,
                "where": "called from customer code",
                "application_name": name,
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "partition": TaskContext.get().partitionId(),
                "ua_autotag_loaded": "ua_autotag" in sys.modules,
            }
        )


class Payload:
    """Stands for what a customer's function carries by value (a model, a lookup table)."""


PAYLOAD = Payload()


def customer_task_with_payload(rows):  # type: ignore[no-untyped-def]
    """Customer code (by value, with its own copy of PAYLOAD in each task) opening a
    connection in a worker where products are registered. Counts how many earlier
    tasks' payloads this worker process still keeps alive once they are done."""
    import gc
    import weakref

    import psycopg
    from pyspark import TaskContext

    list(rows)
    acme_dateng.jobs.CODE  # noqa: B018  (the product is registered in this worker)
    with psycopg.connect(os.environ["UA_SPARK_TEST_PG_DSN"]) as conn:
        conn.execute("SELECT 1")
    # kept across tasks in a module of the worker (this function's globals are per task)
    refs = vars(customer_pipeline).setdefault("_payload_refs", [])
    gc.collect()
    earlier_alive = sum(ref() is not None for ref in refs)
    refs.append(weakref.ref(PAYLOAD))
    yield json.dumps(
        {
            "code": "customer payload task",
            "where": "payload",
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "partition": TaskContext.get().partitionId(),
            "earlier_tasks": len(refs) - 1,
            "earlier_payloads_alive": earlier_alive,
        }
    )


def main(out: str) -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("ua-autotag-spark-workers")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        # a short-lived driver: C1 only, serial GC (starts and runs small jobs faster)
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.python.worker.reuse", "true")  # the default: workers run many tasks
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    sc = spark.sparkContext
    rdd = sc.parallelize(range(8), 4)
    # first, while no worker has imported any product: a product's closure (by value)
    closure = acme_dateng.jobs.closure_probe("closure, fresh worker")
    observations = [json.loads(s) for s in rdd.mapPartitions(closure).collect()]
    for module in MODULES:
        observations += [json.loads(s) for s in rdd.mapPartitions(module.probe_partition).collect()]
        rdd.foreachPartition(module.record_partition)  # recorded in PostgreSQL by the worker
        probe = F.udf(module.udf_probe, "string")
        rows = spark.range(0, 4, numPartitions=2).select(probe("id")).collect()
        observations += [json.loads(row[0]) for row in rows]
    observations += [
        json.loads(s) for s in rdd.mapPartitions(customer_code_calling_everything).collect()
    ]
    # the same closure once the workers have imported acme_dateng (reuse: same processes)
    closure = acme_dateng.jobs.closure_probe("closure, registered")
    observations += [json.loads(s) for s in rdd.mapPartitions(closure).collect()]
    # customer tasks carrying data by value: nothing of theirs outlives them in a worker
    for _ in range(4):
        observations += [
            json.loads(s) for s in rdd.mapPartitions(customer_task_with_payload).collect()
        ]
    spark.stop()
    with open(out, "w") as f:
        json.dump({"driver_pid": os.getpid(), "observations": observations}, f)


if __name__ == "__main__":
    main(sys.argv[1])
