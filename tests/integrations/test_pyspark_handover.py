"""Where a function is handed to Spark, the decision is taken (the ``pyspark`` integration).

Driven through Spark Connect's real ``UserDefinedFunction`` (pyspark-client: the class
``udf``, ``pandas_udf``, ``mapInPandas``, ``applyInPandas``... all build; no server is
needed to build one). What travels is read from the carried function's payload; that the
executor applies it is ``test_pyspark_executor.py`` (a fresh Python) and
``tests/spark_workers/test_cluster.py`` (a real cluster).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import ua_autotag
from ua_autotag import executor

connect_udf = pytest.importorskip("pyspark.sql.connect.udf")

ACME = "AcmePartner_DatEngProduct/3.5"
DEFAULT = "Customer_App/1.0"
SCOPED = "Umbrella_Scoped/9.1"

PRODUCT = '''\
"""A product's module: functions it defines and hands over."""
from pyspark.sql.connect.udf import UserDefinedFunction


def nested():
    return lambda value: value


def hand_over(func):
    return UserDefinedFunction(func, "string")
'''


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "acme_handover").mkdir()
    (tmp_path / "acme_handover" / "__init__.py").write_text(PRODUCT)
    sys.path.insert(0, str(tmp_path))
    try:
        import acme_handover

        yield acme_handover
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_handover", None)


def customer(value: Any) -> Any:
    return value


def carried(func: Any) -> Any:
    """What Spark would pickle for ``func`` handed over here: (kind, value) or None."""
    handed = connect_udf.UserDefinedFunction(func, "string").func
    if not isinstance(handed, executor.Carried):
        assert handed is func
        return None
    head, value = handed.ua_autotag_payload.split(" ")[:2]
    return head[1], value


def test_nothing_configured_nothing_carried() -> None:
    assert carried(customer) is None


def test_the_process_default_travels() -> None:
    ua_autotag.instrument(DEFAULT)
    assert carried(customer) == (executor.DEFAULT, DEFAULT)


def test_a_scope_travels_as_a_scope() -> None:
    ua_autotag.instrument(DEFAULT)
    with ua_autotag.user_agent(SCOPED):
        assert carried(customer) == (executor.SCOPE, SCOPED)


def test_only_products_registered_customer_function_untouched(product: Any) -> None:
    ua_autotag.instrument(ACME, packages=["acme_handover"])
    assert carried(customer) is None


def test_a_product_s_lambda_carries_the_product_whoever_hands_it_over(product: Any) -> None:
    ua_autotag.instrument(DEFAULT)
    ua_autotag.instrument(ACME, packages=["acme_handover"])
    assert carried(product.nested()) == (executor.PRODUCT, ACME)
    with ua_autotag.user_agent(SCOPED):  # a scope still wins
        assert carried(product.nested()) == (executor.SCOPE, SCOPED)


def test_the_product_handing_over_a_customer_callback(product: Any) -> None:
    ua_autotag.instrument(DEFAULT)
    ua_autotag.instrument(ACME, packages=["acme_handover"])
    handed = product.hand_over(customer).func
    assert isinstance(handed, executor.Carried)
    assert handed.ua_autotag_payload.split(" ")[:2] == ["1pv", ACME]


def test_disabled_and_uninstrument_stop_the_carrying() -> None:
    ua_autotag.instrument(DEFAULT, disabled=["pyspark"])
    assert carried(customer) is None
    ua_autotag.instrument(DEFAULT)
    assert carried(customer) is not None
    ua_autotag.uninstrument()
    assert carried(customer) is None


def test_a_carried_function_is_not_carried_twice() -> None:
    ua_autotag.instrument(DEFAULT)
    first = connect_udf.UserDefinedFunction(customer, "string").func
    with ua_autotag.user_agent(SCOPED):  # registered again under a name, elsewhere
        again = connect_udf.UserDefinedFunction(first, "string").func
    assert again is first
