"""The driver programs (and the Spark Connect client) the cluster tests run (not a test module).

Usage: ``python cluster_job.py MODE MASTER OUT.json`` with the product package
``acme_dateng`` importable (the test writes it; its ``__init__`` registers it with
``packages=[__name__]``) and ``UA_SPARK_TEST_PG_DSN`` / ``UA_SPARK_TEST_TABLE`` /
``UA_SPARK_TEST_PYFILES`` and ``PYSPARK_PYTHON`` (the executors' Python) in the driver's
environment (never the executors': they see only what Spark itself sends them).

Every observation is made on an executor, in a fresh Python worker: a function opens a
psycopg connection and reports what PostgreSQL recorded as its ``application_name``, plus
what that worker had imported and which ua-autotag or libpq variables its environment
held. Modes (one Spark application each):

* ``launcher`` — run under ``ua-autotag run --user-agent Customer_App/1.0``: the
  customer's own functions of every kind, the product's module-level function (by
  reference), the product's nested functions (by value), a customer callback the product
  hands over and the customer collects, pandas UDFs, a streaming ``foreach`` writer;
* ``products`` — only the product registered: the customer's function stays untagged;
  then ``ua_autotag.instrument("Customer_App/1.0")`` and the customer's UDFs carry it;
* ``bare`` — the executors run a Python without ua-autotag: same results, untagged;
* ``connect`` — a Spark Connect client (``MASTER`` is ``sc://...``) under the launcher:
  its UDFs run in the server's Python workers.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import acme_dateng.jobs

DSN = os.environ["UA_SPARK_TEST_PG_DSN"]
SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def observer(case):  # type: ignore[no-untyped-def]
    """The customer's observation (this script is ``__main__``: shipped by value)."""

    def observe():  # type: ignore[no-untyped-def]
        import psycopg

        with psycopg.connect(DSN) as conn:
            name = conn.execute(SQL).fetchone()[0]
        return json.dumps({
            "case": case,
            "code": "customer",
            "application_name": name,
            "pid": os.getpid(),
            "ua_loaded": "ua_autotag" in sys.modules,
            "product_imported": "acme_dateng" in sys.modules,
            "env": sorted(k for k in os.environ
                          if k.startswith(("UA_AUTOTAG", "PGAPPNAME", "SPARK_CONNECT_USER"))),
        })

    return observe


def partitions(case):  # type: ignore[no-untyped-def]
    observe = observer(case)

    def probe(rows):  # type: ignore[no-untyped-def]
        list(rows)
        yield observe()

    return probe


def value(case):  # type: ignore[no-untyped-def]
    observe = observer(case)
    return lambda _: observe()


def series(case):  # type: ignore[no-untyped-def]
    observe = observer(case)

    def probe(values):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.Series([observe() for _ in range(len(values))])

    return probe


def udtf_probe(case):  # type: ignore[no-untyped-def]
    from pyspark.sql.functions import udtf

    observe = observer(case)

    class Probe:
        def eval(self, x):  # type: ignore[no-untyped-def]
            yield (observe(),)

    return udtf(Probe, returnType="observation: string")


def collect_rdd(rdd):  # type: ignore[no-untyped-def]
    return [json.loads(s) for s in rdd.collect()]


def collect_column(df):  # type: ignore[no-untyped-def]
    return [json.loads(row[0]) for row in df.collect()]


def classic(spark, mode, out):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    sc = spark.sparkContext
    sc.addPyFile(os.environ["UA_SPARK_TEST_PYFILES"])  # the product, for by-reference code
    rdd = sc.parallelize(range(4), 2)
    seen = []
    if mode == "products":
        # only the product registered: the customer's function stays untagged
        seen += collect_rdd(rdd.mapPartitions(partitions("customer mapPartitions")))
        # the product's nested function, handed over by the customer: the product's
        seen += collect_rdd(rdd.mapPartitions(acme_dateng.jobs.closure("product nested")))
        import ua_autotag

        ua_autotag.instrument("Customer_App/1.0")  # the app, in code
        probe = F.udf(value("customer udf"), "string")
        seen += collect_column(spark.range(0, 2, numPartitions=2).select(probe("id")))
        seen += collect_rdd(rdd.map(lambda _: observer("customer map")()))
        # a command over Spark's 1 MB threshold travels as a broadcast variable
        payload = b"x" * 1_200_000
        observe_large = observer("customer large command")
        seen += collect_rdd(rdd.mapPartitions(
            lambda rows: [observe_large() + " " * (len(payload) - len(payload))]
        ))
    elif mode == "bare":
        seen += collect_rdd(rdd.mapPartitions(partitions("customer mapPartitions")))
        seen += collect_rdd(rdd.mapPartitions(acme_dateng.jobs.closure("product nested")))
        seen.append({"case": "result", "value": rdd.map(lambda x: x * 10).sum()})
    else:  # launcher
        seen += collect_rdd(rdd.mapPartitions(partitions("customer mapPartitions")))
        seen += collect_rdd(rdd.flatMap(lambda x: [observer("customer flatMap")()] if x % 2
                                        else []))
        probe = F.udf(value("customer udf"), "string")
        seen += collect_column(spark.range(0, 2, numPartitions=2).select(probe("id")))
        seen += collect_rdd(rdd.mapPartitions(acme_dateng.jobs.probe_partition))
        seen += collect_rdd(rdd.mapPartitions(acme_dateng.jobs.closure("product nested")))
        seen += collect_rdd(rdd.map(acme_dateng.jobs.lambda_probe("product lambda")))
        # the product hands the customer's callback over; the customer collects later
        handed = acme_dateng.jobs.run_partitions(rdd, partitions("product hands over"))
        seen += collect_rdd(handed)
        # pandas UDFs: the customer's, the product's nested one
        df = spark.range(0, 2, numPartitions=2)
        pudf = F.pandas_udf(series("customer pandas_udf"), "string")
        seen += collect_column(df.select(pudf("id")))
        product_pudf = acme_dateng.jobs.pandas_probe("product pandas_udf")
        seen += collect_column(df.select(product_pudf("id")))
        grouped = acme_dateng.jobs.grouped("product applyInPandas")
        applied = df.groupBy("id").applyInPandas(grouped, "observation string")
        seen += collect_column(applied)
        seen += collect_column(udtf_probe("customer udtf")(F.lit(1)))
        streaming_foreach(spark, "customer streaming foreach")
    with open(out, "w") as f:
        json.dump(seen, f)


def streaming_foreach(spark, case):  # type: ignore[no-untyped-def]
    """A file stream (two rows) written by the customer's ``foreach`` function, which
    records its connection's name in UA_SPARK_TEST_TABLE (the server fills it in)."""
    table = os.environ["UA_SPARK_TEST_TABLE"]
    source = tempfile.mkdtemp()
    with open(os.path.join(source, "rows.json"), "w") as f:
        f.write('{"x": 1}\n{"x": 2}\n')

    def record(row):  # type: ignore[no-untyped-def]
        import psycopg

        with psycopg.connect(DSN) as conn:
            conn.execute(
                f"INSERT INTO {table} (variant, application_name) "
                "SELECT %s, application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                (case,),
            )

    query = (
        spark.readStream.schema("x long").json(source)
        .writeStream.foreach(record)
        .option("checkpointLocation", tempfile.mkdtemp())
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(300)


def connect(spark, out):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    df = spark.range(0, 2, numPartitions=2)
    seen = []
    probe = F.udf(value("connect customer udf"), "string")
    seen += collect_column(df.select(probe("id")))
    nested = F.udf(acme_dateng.jobs.value_probe("connect product nested udf"), "string")
    seen += collect_column(df.select(nested("id")))
    seen += collect_column(acme_dateng.jobs.with_udf(df, "connect product hands over udf"))
    seen += collect_column(acme_dateng.jobs.udtf_probe("connect product udtf")(F.lit(1)))
    pudf = F.pandas_udf(series("connect customer pandas_udf"), "string")
    seen += collect_column(df.select(pudf("id")))
    with open(out, "w") as f:
        json.dump(seen, f)


def main(mode: str, master: str, out: str) -> None:
    from pyspark.sql import SparkSession

    if mode == "connect":
        spark = SparkSession.builder.remote(master).getOrCreate()
        try:
            connect(spark, out)
        finally:
            spark.stop()
        return
    builder = SparkSession.builder.master(master).appName(f"ua-autotag-cluster-{mode}")
    confs = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "2",
        "spark.python.worker.reuse": "false",  # every task: a fresh Python worker
        "spark.executor.memory": "512m",
        "spark.cores.max": "2",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    for key, value in confs.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        classic(spark, mode, out)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
