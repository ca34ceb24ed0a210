"""The engine, proven on a real module imported before and after instrument()."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

import ua_autotag
from ua_autotag.catalog import CATALOG, CatalogEntry

UA = "AcmePartner_DatEngProduct/3.5"

DEMO_CLIENT = textwrap.dedent(
    """
    calls = []

    def connect(*, host=None, port=None, headers=None, fail=None):
        calls.append(dict(headers or {}))
        if fail is not None:
            raise fail
        return dict(headers or {})

    class Client:
        @classmethod
        def open(cls, **kwargs):
            return connect(**kwargs)

        async def aopen(self, **kwargs):
            await __import__("asyncio").sleep(0)
            return connect(**kwargs)
    """
)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real module ``demo_client`` on sys.path, and its integration in the catalog."""
    (tmp_path / "demo_client.py").write_text(DEMO_CLIENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    CATALOG["demo"] = CatalogEntry(
        "demo_client",
        "http-user-agent",
        ("ua-autotag-demo-client-not-installed",),
        module="tests.engine.demo_integration",
    )
    yield tmp_path
    ua_autotag.uninstrument()
    del CATALOG["demo"]
    sys.modules.pop("demo_client", None)


def _originals() -> dict[str, Any]:
    import demo_client

    return {
        "connect": demo_client.__dict__["connect"],
        "open": demo_client.Client.__dict__["open"],
        "aopen": demo_client.Client.__dict__["aopen"],
    }


def test_module_imported_before_instrument_is_patched(demo: Path) -> None:
    import demo_client

    before = _originals()
    ua_autotag.instrument(UA, integrations=["demo"])
    assert demo_client.connect(headers={"User-Agent": "app/1"}) == {"User-Agent": f"app/1 {UA}"}
    assert demo_client.Client.open()["User-Agent"] == UA
    assert ua_autotag.status()["demo"].state == "patched"
    ua_autotag.uninstrument()
    assert _originals() == before  # identity restored, not just behaviour
    assert all(_originals()[k] is before[k] for k in before)
    assert demo_client.connect() == {}


def test_module_imported_after_instrument_is_patched(demo: Path) -> None:
    ua_autotag.instrument(UA, integrations=["demo"])
    assert "demo_client" not in sys.modules
    assert ua_autotag.status()["demo"].state == "waiting"
    import demo_client

    assert demo_client.connect()["User-Agent"] == UA
    assert ua_autotag.status()["demo"].state == "patched"


def test_early_bound_reference_is_covered_through_the_class(demo: Path) -> None:
    import demo_client

    open_ = demo_client.Client.open  # bound before instrument(), like `from x import connect`
    ua_autotag.instrument(UA, integrations=["demo"])
    assert open_()["User-Agent"] == UA


def test_double_instrument_wraps_once_and_retargets(demo: Path) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    first = demo_client.__dict__["connect"]
    ua_autotag.instrument(UA, integrations=["demo"])
    assert demo_client.__dict__["connect"] is first
    ua_autotag.instrument("Other_Product/2.0", integrations=["demo"])
    assert demo_client.__dict__["connect"] is first
    assert demo_client.connect()["User-Agent"] == "Other_Product/2.0"
    # exactly one wrapper layer: unwrapping once reaches the plain function
    assert inspect.isfunction(first.__wrapped__)


def test_async_target_is_tagged(demo: Path) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    result = asyncio.run(demo_client.Client().aopen(headers={"User-Agent": "x"}))
    assert result["User-Agent"] == f"x {UA}"


def test_wrapped_exception_propagates_unchanged(demo: Path) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    boom = ConnectionRefusedError("no server")
    with pytest.raises(ConnectionRefusedError) as info:
        demo_client.connect(fail=boom)
    assert info.value is boom


def test_missing_target_degrades_to_the_patches_that_remain(
    demo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One method gone (``Client.open``): the others still tag; one warning; "partial"."""
    (demo / "demo_client.py").write_text(DEMO_CLIENT.replace("def open(", "def open_v2("))
    import demo_client

    with caplog.at_level(logging.WARNING, logger="ua_autotag"):
        ua_autotag.instrument(UA, integrations=["demo"])
    row = ua_autotag.status()["demo"]
    assert row.state == "partial"
    assert row.missing == ("demo_client.Client.open",)
    assert "demo_client.Client.open not found" in (row.reason or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "demo_client.Client.open" in warnings[0].getMessage()
    assert demo_client.connect()["User-Agent"] == UA  # the intact path is tagged
    assert demo_client.Client.open_v2()["User-Agent"] == UA  # it calls connect: tagged there


def test_missing_essential_target_warns_once_and_leaves_client_untouched(
    demo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (demo / "demo_client.py").write_text(DEMO_CLIENT.replace("def connect(", "def connect_v2("))
    import demo_client

    before = dict(vars(demo_client.Client))
    with caplog.at_level(logging.WARNING, logger="ua_autotag"):
        ua_autotag.instrument(UA, integrations=["demo"])
    row = ua_autotag.status()["demo"]
    assert row.state == "failed"
    assert "demo_client.connect not found (essential)" in (row.reason or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "demo" in warnings[0].getMessage()
    assert dict(vars(demo_client.Client)) == before  # skipped whole: nothing was wrapped


def test_version_outside_range_is_unsupported(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ua_autotag.engine import patcher

    monkeypatch.setattr(patcher, "installed_version", lambda dists: "0.5")
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    row = ua_autotag.status()["demo"]
    assert row.state == "unsupported"
    assert "0.5" in (row.reason or "") and ">=1.0" in (row.reason or "")
    assert demo_client.connect() == {}


def test_failing_tagger_never_breaks_the_call(
    demo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import demo_client

    from tests.engine import demo_integration

    def broken(*args: Any) -> Any:
        raise RuntimeError("bug in ua_autotag password=hunter2")

    patches = tuple(
        type(p)(p.module, p.path, before=broken, span=p.span, optional=p.optional)
        for p in demo_integration.INTEGRATION.patches
    )
    monkeypatch.setattr(
        demo_integration,
        "INTEGRATION",
        type(demo_integration.INTEGRATION)("demo", ">=0", "demo", patches),
    )
    with caplog.at_level(logging.WARNING, logger="ua_autotag"):
        ua_autotag.instrument(UA, integrations=["demo"])
        assert demo_client.connect(headers={"a": "b"}) == {"a": "b"}
        assert demo_client.connect(headers={"a": "b"}) == {"a": "b"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "hunter2" not in warnings[0] and "RuntimeError" in warnings[0]


def test_disabled_integration_is_not_patched(demo: Path) -> None:
    import demo_client

    original = demo_client.__dict__["connect"]
    ua_autotag.instrument(UA, integrations=["demo"], disabled=["demo"])
    assert demo_client.__dict__["connect"] is original
    assert ua_autotag.status()["demo"].state == "disabled"


def test_reinstrument_without_an_integration_removes_it(demo: Path) -> None:
    import demo_client

    original = demo_client.__dict__["connect"]
    ua_autotag.instrument(UA, integrations=["demo"])
    assert demo_client.__dict__["connect"] is not original
    ua_autotag.instrument(UA, integrations=["demo"], disabled=["demo"])
    assert demo_client.__dict__["connect"] is original


def test_uninstrument_keeps_a_wrapper_installed_on_top_working(demo: Path) -> None:
    import demo_client
    import wrapt

    original = demo_client.__dict__["connect"]
    ua_autotag.instrument(UA, integrations=["demo"])
    seen = []

    def other(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(1)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(demo_client, "connect", other)  # another library, on top
    theirs = demo_client.__dict__["connect"]
    ua_autotag.uninstrument()
    assert demo_client.__dict__["connect"] is theirs  # theirs stays where it was
    assert theirs.__wrapped__ is original  # ours is gone from inside the chain
    assert demo_client.connect() == {}
    assert seen == [1]  # theirs still runs


def test_older_wrapt_leaves_ours_in_a_chain_as_a_pass_through(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wrapt without ``unwrap_object`` (< 2) can only remove an outermost wrapper: ours,
    under another library's, stays in the chain but passes every call through."""
    import demo_client
    import wrapt

    original = demo_client.__dict__["connect"]
    ua_autotag.instrument(UA, integrations=["demo"])
    wrapt.wrap_function_wrapper(demo_client, "connect", lambda w, i, a, k: w(*a, **k))
    theirs = demo_client.__dict__["connect"]
    monkeypatch.delattr(wrapt, "unwrap_object")
    ua_autotag.uninstrument()
    assert theirs.__wrapped__ is not original  # ours is still there...
    assert demo_client.connect() == {}  # ...and tags nothing


def test_scoped_override_and_threads(demo: Path) -> None:
    import threading

    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    results: dict[str, str] = {}

    def worker(value: str) -> None:
        with ua_autotag.user_agent(value):
            results[value] = demo_client.connect()["User-Agent"]

    threads = [threading.Thread(target=worker, args=(f"Isv{i}_Product/{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {v: v for v in results} and len(results) == 16
    assert demo_client.connect()["User-Agent"] == UA


def test_span_per_call_with_attributes(demo: Path, spans: Any) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    demo_client.connect(host="db.example", port=443)
    (span,) = spans.get_finished_spans()
    assert span.name == "connect db.example:443"
    assert span.attributes["user_agent.original"] == UA
    assert span.attributes["ua_autotag.integration"] == "demo"
    assert span.attributes["server.port"] == 443


def test_nested_patched_calls_make_one_span(demo: Path, spans: Any) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"])
    demo_client.Client.open(host="h", port=1)  # Client.open -> connect: two patched layers
    assert len(spans.get_finished_spans()) == 1


def test_spans_off_makes_no_span(demo: Path, spans: Any) -> None:
    import demo_client

    ua_autotag.instrument(UA, integrations=["demo"], spans=False)
    assert demo_client.connect()["User-Agent"] == UA
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("products", [False, True])
def test_strict_error_or_client_error_leaves_no_decision_behind(
    demo: Path, monkeypatch: pytest.MonkeyPatch, products: bool
) -> None:
    """With products registered a tagging call hands its decision to inner layers; a
    strict configuration error from our step, or the client's own exception, must
    propagate unchanged and take that decision back (a leak would tag the next call)."""
    import demo_client

    from tests.engine import demo_integration
    from ua_autotag.engine import attribution
    from ua_autotag.value import ConfigurationError

    fail_ours = [True]

    def tag_or_fail(tag: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if fail_ours[0]:
            raise ConfigurationError("demo: the value does not fit this carrier")
        headers = {**(kwargs.get("headers") or {}), "User-Agent": tag.value}
        return args, {**kwargs, "headers": headers}

    # no span, no target: the wrapper's inline path
    monkeypatch.setattr(
        demo_integration,
        "INTEGRATION",
        type(demo_integration.INTEGRATION)(
            "demo", ">=0", "demo", (type(demo_integration.INTEGRATION.patches[0])(
                "demo_client", "connect", before=tag_or_fail, essential=True),),
        ),
    )
    ua_autotag.instrument(UA, integrations=["demo"], spans=False, strict=True)
    if products:
        ua_autotag.instrument(
            "Globex_Loader/2.0", packages=["globex_not_on_this_stack"], integrations=["demo"]
        )
    st = attribution.state()
    assert st is not None and bool(st.by_package) is products
    with pytest.raises(ConfigurationError, match="does not fit"):
        demo_client.connect(headers={})
    assert attribution._DECIDED.get() is None and attribution._PINNED.get() is None
    fail_ours[0] = False
    refused = ConnectionRefusedError("peer down")
    with pytest.raises(ConnectionRefusedError) as info:
        demo_client.connect(fail=refused)
    assert info.value is refused
    assert attribution._DECIDED.get() is None and attribution._PINNED.get() is None
    assert demo_client.connect(headers={}) == {"User-Agent": UA}
