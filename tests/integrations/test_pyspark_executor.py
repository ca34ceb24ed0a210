"""A function handed to Spark carries the decision; a fresh Python (an executor) applies it.

The driver side is this process: ``ua_autotag.executor.carry`` wraps a function with the
payload of a decision, pickled with pyspark's own cloudpickle (what Spark sends). The
executor is a fresh Python subprocess that unpickles it and calls it, as a Spark Python
worker does; the function opens a psycopg connection and returns what PostgreSQL
recorded as its ``application_name``. The real cluster (standalone and Spark Connect)
is ``tests/spark_workers/test_cluster.py`` (``nox -s sparkworkers``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, List

import pytest

import ua_autotag
from tests import pg
from ua_autotag import executor

cloudpickle = pytest.importorskip("pyspark.cloudpickle")

ACME = "AcmePartner_DatEngProduct/3.5"
DEFAULT = "Customer_App/1.0"
SCOPED = "Umbrella_Scoped/9.1"

#: runs in the "executor": unpickle what the driver sent, call it, print the result
EXECUTOR = r"""
import json, pickle, sys
if sys.argv[2] != "-":  # "ua_autotag": not installed; "ua_autotag.executor": an older release
    hidden = sys.argv[2]
    class Hide:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == hidden or name.startswith(hidden + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Hide)
with open(sys.argv[1], "rb") as f:
    func, arg = pickle.load(f)
result = func(arg)
if hasattr(result, "__next__"):
    result = list(result)
print(json.dumps({"result": result, "ua_loaded": "ua_autotag" in sys.modules}))
"""

PRODUCT = '''\
import psycopg
import ua_autotag

ua_autotag.instrument("__VALUE__", packages=[__name__])


def application_name(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("__SQL__").fetchone()[0]
'''


def _run(tmp_path: Path, func: Any, arg: Any, hide: str = "-") -> Any:
    """Pickle ``(func, arg)`` here, unpickle and call it in a fresh Python."""
    sent = tmp_path / "command.pickle"
    sent.write_bytes(cloudpickle.dumps((func, arg)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UA_AUTOTAG_", "PGAPPNAME"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path / "code"), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    )
    proc = subprocess.run(
        [sys.executable, "-c", EXECUTOR, str(sent), hide],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _connect(dsn: str) -> Callable[[Any], str]:
    """A function shipped by value (a closure), connecting on the executor."""
    sql = pg.APPLICATION_NAME_SQL

    def probe(_: Any) -> str:
        import psycopg

        with psycopg.connect(dsn) as conn:
            return str(conn.execute(sql).fetchone()[0])

    return probe


def _via_product(dsn: str) -> Callable[[Any], List[str]]:
    """Connects itself, then through the product's own code (imported on the executor)."""
    own = _connect(dsn)

    def probe(_: Any) -> List[str]:
        import acme_dateng

        return [own(None), acme_dateng.application_name(dsn)]

    return probe


@pytest.fixture
def product(tmp_path: Path) -> None:
    code = tmp_path / "code" / "acme_dateng"
    code.mkdir(parents=True)
    text = PRODUCT.replace("__VALUE__", ACME).replace("__SQL__", pg.APPLICATION_NAME_SQL)
    (code / "__init__.py").write_text(text)


@pytest.mark.parametrize("kind", [executor.DEFAULT, executor.PRODUCT, executor.SCOPE])
def test_the_value_is_in_force_on_the_executor(tmp_path: Path, pg_dsn: str, kind: str) -> None:
    settings = ua_autotag.instrument(DEFAULT)
    carried = executor.carry(_connect(pg_dsn), executor.payload(settings, kind))
    seen = _run(tmp_path, carried, None)
    assert seen == {"result": DEFAULT, "ua_loaded": True}


def test_without_a_decision_nothing_travels(tmp_path: Path, pg_dsn: str) -> None:
    """The bare function (nothing configured): untagged, ua-autotag not even imported."""
    seen = _run(tmp_path, _connect(pg_dsn), None)
    assert seen == {"result": "", "ua_loaded": False}


def test_an_executor_without_ua_autotag_runs_the_function_untagged(
    tmp_path: Path, pg_dsn: str
) -> None:
    settings = ua_autotag.instrument(DEFAULT)
    carried = executor.carry(_connect(pg_dsn), executor.payload(settings, executor.DEFAULT))
    assert _run(tmp_path, carried, None, hide="ua_autotag") == {"result": "", "ua_loaded": False}


def test_an_executor_with_an_older_ua_autotag_runs_the_function_untagged(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A release without ``ua_autotag.executor``: imported, found wanting, left alone."""
    settings = ua_autotag.instrument(DEFAULT)
    carried = executor.carry(_connect(pg_dsn), executor.payload(settings, executor.DEFAULT))
    seen = _run(tmp_path, carried, None, hide="ua_autotag.executor")
    assert seen == {"result": "", "ua_loaded": True}


@pytest.mark.usefixtures("product")
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # the handed value stands below the stack: the product's own code is the product's
        (executor.DEFAULT, [DEFAULT, ACME]),
        (executor.PRODUCT, [DEFAULT, ACME]),
        # a scope wins over everything inside it, as on the driver
        (executor.SCOPE, [DEFAULT, DEFAULT]),
    ],
)
def test_product_code_inside_a_handed_function(
    tmp_path: Path, pg_dsn: str, kind: str, expected: List[str]
) -> None:
    settings = ua_autotag.instrument(DEFAULT)
    carried = executor.carry(_via_product(pg_dsn), executor.payload(settings, kind))
    assert _run(tmp_path, carried, None)["result"] == expected


def test_iterators_are_read_with_the_value(tmp_path: Path, pg_dsn: str) -> None:
    """An RDD function's work happens as Spark reads its iterator: each step is tagged."""
    settings = ua_autotag.instrument(SCOPED)
    probe = _connect(pg_dsn)

    def partition(rows: Any) -> Any:
        for row in rows:
            yield probe(row)

    carried = executor.carry(partition, executor.payload(settings, executor.DEFAULT))
    assert _run(tmp_path, carried, [1, 2, 3])["result"] == [SCOPED] * 3


def test_metadata_spark_inspects_is_the_function_s() -> None:
    import inspect

    def grouped(key: Any, pdf: Any) -> Any:
        """Doc."""
        return pdf

    settings = ua_autotag.instrument(DEFAULT)
    carried = executor.carry(grouped, executor.payload(settings, executor.DEFAULT))
    assert carried.__name__ == "grouped" and carried.__doc__ == "Doc."
    assert carried.__code__ is grouped.__code__
    assert inspect.getfullargspec(executor.receive((grouped, carried.ua_autotag_payload))).args \
        == ["key", "pdf"]
    assert carried(1, 2) == 2  # called on the driver: the function itself


@pytest.mark.parametrize("by_value", [False, True])
def test_pickled_command_grows_by_at_most_300_bytes(by_value: bool) -> None:
    import operator

    func: Any = (lambda x: x + 1) if by_value else operator.neg
    settings = ua_autotag.instrument("AcmePartner_DatEngProduct/3.5.12", mode="replace")
    carried = executor.carry(func, executor.payload(settings, executor.PRODUCT, True))
    growth = len(cloudpickle.dumps((carried, None))) - len(cloudpickle.dumps((func, None)))
    assert 0 < growth <= 300, growth
