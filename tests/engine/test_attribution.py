"""The attribution rule (scope > decided > owner: object pin, pin in force, stack >
default), asked through every entry: :func:`current`, :func:`for_object`, :func:`creator`."""

from __future__ import annotations

import contextlib
import types
from typing import Iterator

import pytest

from ua_autotag.engine import attribution
from ua_autotag.settings import Settings
from ua_autotag.value import UserAgent


def _settings(name: str, packages: tuple = ()) -> Settings:
    return Settings(UserAgent.coerce(f"Acme_{name}/1.0"), packages=packages)


@pytest.fixture
def world() -> Iterator[types.SimpleNamespace]:
    default = _settings("Default")
    product = _settings("Product", ("tests_product_pkg",))
    other = _settings("Other", ("tests_other_pkg",))
    for s in (default, product, other):
        attribution.register(s)
    products = {p.settings: p for p in attribution.products()}
    yield types.SimpleNamespace(
        default=default,
        product=product,
        other=other,
        p_product=products[product],
        p_other=products[other],
    )
    attribution.unregister()


def _from_package(package: str, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` from a frame whose module belongs to ``package``."""
    namespace = {"__name__": f"{package}.mod", "fn": fn}
    exec("def call():\n    return fn()\n", namespace)
    return namespace["call"]()


class _Obj:
    pass


def test_nothing_registered_leaves_calls_alone() -> None:
    assert attribution.current() is None
    assert attribution.for_object(_Obj()) is None
    assert attribution.creator() is None
    assert not attribution.products_registered()


def test_default_then_stack_then_pin(world: types.SimpleNamespace) -> None:
    assert attribution.current() is world.default
    assert _from_package("tests_product_pkg", attribution.current) is world.product
    # the pin in force beats the stack
    with attribution.pinned(world.p_other):
        assert _from_package("tests_product_pkg", attribution.current) is world.other
    # the object's own pin beats the pin in force and the stack
    obj = _Obj()
    attribution.pin(obj, world.p_product)
    assert attribution.pin_of(obj) is world.p_product
    with attribution.pinned(world.p_other):
        assert attribution.for_object(obj) is world.product
    assert _from_package("tests_other_pkg", lambda: attribution.for_object(obj)) is world.product
    assert attribution.for_object(_Obj()) is world.default


def test_decided_beats_owner_and_scope_beats_decided(world: types.SimpleNamespace) -> None:
    obj = _Obj()
    attribution.pin(obj, world.p_product)
    token = attribution.decide(world.other)
    try:
        assert attribution.current() is world.other
        assert attribution.for_object(obj) is world.other
        assert _from_package("tests_product_pkg", attribution.current) is world.other
        # inside a tagged call an object created belongs to the pin in force only
        assert _from_package("tests_product_pkg", attribution.creator) is None
        with attribution.pinned(world.p_product):
            assert attribution.creator() is world.p_product
        with contextlib.contextmanager(attribution.scope)(
            UserAgent.coerce("Acme_Scoped/2.0")
        ) as ua:
            for answer in (attribution.current(), attribution.for_object(obj)):
                assert answer is not None and answer.user_agent == ua
    finally:
        attribution.undecide(token)
    assert _from_package("tests_product_pkg", attribution.creator) is world.p_product


def test_a_removed_product_falls_back_to_the_default(world: types.SimpleNamespace) -> None:
    obj = _Obj()
    attribution.pin(obj, world.p_product)
    attribution.unregister(("tests_product_pkg",))
    assert attribution.for_object(obj) is world.default
    assert _from_package("tests_product_pkg", attribution.current) is world.default
    with attribution.pinned(world.p_product):
        assert attribution.current() is world.default
