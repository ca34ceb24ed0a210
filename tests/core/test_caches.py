"""Per-connect caches (issue 16 §3): cached == uncached, a changed value/mode misses, bounded.

Each cache in the tagging path keys on (the caller's input, our value, the mode) - plus
whatever else the uncached result reads (``PGAPPNAME`` for psycopg2, the settings'
host and driver rules for pyodbc). For each: the result of a cache hit equals a fresh
computation of the same inputs, a different value or mode is a miss (never a stale
hit), and the cache stays bounded however many distinct inputs pass through it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ua_autotag.merge import entry as entry_merge
from ua_autotag.merge import http as http_merge
from ua_autotag.merge import libpq
from ua_autotag.merge import spark as spark_merge

OURS = "AcmePartner_DatEngProduct/3.5"
OTHER = "AcmePartner_OtherProduct/1.0"
MODES = ("append", "replace", "keep")

texts = st.one_of(st.none(), st.text(max_size=80))
plain = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def _uncached(fn: Any) -> Callable[..., Any]:
    return fn.__wrapped__  # type: ignore[no-any-return]


def _misses(fn: Any) -> int:
    return int(fn.cache_info().misses)


# ------------------------------------------------------------------ lru-cached merges

LRU_MERGES: Dict[str, Tuple[Any, Callable[[Any, str, str], Tuple[Any, ...]]]] = {
    "libpq application_name": (libpq._merge_application_name, lambda e, o, m: (e, o, m, 63)),
    "connector user_agent_entry": (entry_merge.merge_entry, lambda e, o, m: (e, o, m)),
    "REST User-Agent": (http_merge.merge_rest_user_agent, lambda e, o, m: (e, o, m)),
}


@pytest.mark.parametrize("name", sorted(LRU_MERGES))
@settings(max_examples=150, deadline=None)
@given(existing=texts, mode=st.sampled_from(MODES))
def test_lru_merge_cached_equals_uncached(name: str, existing: Any, mode: str) -> None:
    cached, args = LRU_MERGES[name]
    call = args(existing, OURS, mode)
    first = cached(*call)
    assert first == _uncached(cached)(*call)
    assert cached(*call) == first  # the hit


@pytest.mark.parametrize("name", sorted(LRU_MERGES))
def test_lru_merge_changed_value_or_mode_misses(name: str) -> None:
    cached, args = LRU_MERGES[name]
    cached(*args("app/1", OURS, "append"))
    before = _misses(cached)
    cached(*args("app/1", OURS, "append"))
    assert _misses(cached) == before  # same inputs: a hit
    for ours, mode in ((OTHER, "append"), (OURS, "replace"), (OURS, "keep")):
        result = cached(*args("app/1", ours, mode))
        assert result == _uncached(cached)(*args("app/1", ours, mode))
    assert _misses(cached) == before + 3


@pytest.mark.parametrize("name", sorted(LRU_MERGES))
def test_lru_merge_bounded(name: str) -> None:
    cached, args = LRU_MERGES[name]
    for i in range(1000):
        cached(*args(f"app/{i}", OURS, "append"))
    assert cached.cache_info().currsize <= cached.cache_info().maxsize <= 256


def test_application_name_cut_is_logged_on_every_cut(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        for _ in range(2):
            assert libpq.merge_application_name("x" * 100, OURS, "append").endswith(OURS)
    assert sum("cut to fit" in r.getMessage() for r in caplog.records) == 2


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_display_bytes_fast_path_matches_the_rule(text: str) -> None:
    slow = sum(
        1 if " " <= ch <= "~" else 4 * len(ch.encode("utf-8", "surrogatepass")) for ch in text
    )
    assert libpq.pg_display_bytes(text) == slow
    for budget in (-1, 0, 5, 40):
        fitted = libpq._fit(text, budget)
        assert text.startswith(fitted)
        assert libpq.pg_display_bytes(fitted) <= max(budget, 0)
        rest = text[len(fitted) : len(fitted) + 1]
        assert not rest or libpq.pg_display_bytes(fitted + rest) > budget


@settings(max_examples=150, deadline=None)
@given(user=plain, mode=st.sampled_from(MODES))
def test_spark_merge_cached_equals_uncached(user: str, mode: str) -> None:
    from ua_autotag.merge.spark import merge_result

    result = f"{user} spark/4.0.0 os/linux python/3.11.7"
    try:
        expected = _uncached(merge_result)(result, user, user, OURS, mode)
    except ValueError:
        return  # over the client's limit: raised every time, never cached
    assert merge_result(result, user, user, OURS, mode) == expected
    assert merge_result(result, user, user, OURS, mode) == expected
    assert spark_merge.merge_user_part(user, OURS, mode) == _uncached(spark_merge.merge_user_part)(
        user, OURS, mode
    )


def test_spark_merge_changed_value_or_mode_misses() -> None:
    from ua_autotag.merge.spark import merge_result

    result = "app spark/4.0.0 os/linux python/3.11.7"
    merge_result(result, "app", "app", OURS, "append")
    before = _misses(merge_result)
    assert (
        merge_result(result, "app", "app", OURS, "append")
        == f"app {OURS} spark/4.0.0 os/linux python/3.11.7"
    )
    assert (
        merge_result(result, "app", "app", OTHER, "append")
        == f"app {OTHER} spark/4.0.0 os/linux python/3.11.7"
    )
    replaced = merge_result(result, "app", "app", OURS, "replace")
    assert replaced == f"{OURS} spark/4.0.0 os/linux python/3.11.7"
    assert merge_result(result, "app", "app", OURS, "keep") == result
    assert _misses(merge_result) == before + 3


# ---------------------------------------------------------------------------- asyncpg


@settings(max_examples=100, deadline=None)
@given(name=plain, extra=plain)
def test_asyncpg_uri_cached_equals_uncached(name: str, extra: str) -> None:
    from urllib.parse import quote

    from ua_autotag.integrations import asyncpg as integration

    dsn = f"postgresql://u@h:5432/db?application_name={quote(name)}&x={quote(extra)}"
    expected = _uncached(integration._uri_application_name_of)(dsn)
    assert integration._uri_application_name(dsn) == expected
    assert integration._uri_application_name(dsn) == expected


# ------------------------------------------------------------------------- jaydebeapi

JDBC = "jdbc:databricks://adb-1.2.azuredatabricks.net:443/default;ssl=1;AuthMech=3"


@settings(max_examples=100, deadline=None)
@given(
    entry=st.one_of(st.none(), plain.filter(lambda s: ";" not in s)), mode=st.sampled_from(MODES)
)
def test_jdbc_url_cached_equals_uncached(entry: Any, mode: str) -> None:
    from ua_autotag.integrations import jaydebeapi as integration

    url = JDBC if entry is None else f"{JDBC};UserAgentEntry={entry}"
    expected = _uncached(integration._url_plan)(url, OURS, mode)
    assert integration._url_plan(url, OURS, mode) == expected
    assert integration._url_plan(url, OURS, mode) == expected


def test_jdbc_url_changed_value_or_mode_misses() -> None:
    from ua_autotag.integrations import jaydebeapi as integration

    url = f"{JDBC};UserAgentEntry=app/1"
    integration._url_plan(url, OURS, "append")
    before = _misses(integration._url_plan)
    assert integration.merge_url(url, OURS, "append") == f"{JDBC};UserAgentEntry=app/1 {OURS}"
    assert integration.merge_url(url, OTHER, "append") == f"{JDBC};UserAgentEntry=app/1 {OTHER}"
    assert integration.merge_url(url, OURS, "replace") == f"{JDBC};UserAgentEntry={OURS}"
    assert integration.merge_url(url, OURS, "keep") == url
    assert _misses(integration._url_plan) == before + 3


# --------------------------------------------------------------------------- psycopg2


@pytest.fixture()
def psycopg2_plans(monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("psycopg2")
    from ua_autotag.integrations import psycopg2 as integration

    monkeypatch.delenv("PGAPPNAME", raising=False)
    integration._CACHE.clear()
    yield integration
    integration._CACHE.clear()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(app=st.one_of(st.none(), plain), mode=st.sampled_from(MODES))
def test_psycopg2_plan_cached_equals_uncached(psycopg2_plans: Any, app: Any, mode: str) -> None:
    from psycopg2.extensions import make_dsn

    dsn = make_dsn("host=127.0.0.1 port=5432 user=u password=p dbname=d", application_name=app)
    expected = psycopg2_plans._make_plan(dsn, OURS, mode)
    assert psycopg2_plans.plan(dsn, OURS, mode) == expected
    assert psycopg2_plans.plan(dsn, OURS, mode) == expected  # the hit


def test_psycopg2_plan_misses_on_value_mode_and_pgappname(
    psycopg2_plans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "host=127.0.0.1 dbname=d"  # no application_name: PGAPPNAME is the caller's value
    first = psycopg2_plans.plan(dsn, OURS, "append")
    assert first.sent == OURS
    assert psycopg2_plans.plan(dsn, OURS, "append") is first  # hit
    assert psycopg2_plans.plan(dsn, OTHER, "append").sent == OTHER
    assert psycopg2_plans.plan(dsn, OURS, "keep").sent == OURS
    monkeypatch.setenv("PGAPPNAME", "job")
    again = psycopg2_plans.plan(dsn, OURS, "append")
    assert again is not first and again.sent == f"job {OURS}"
    assert again == psycopg2_plans._make_plan(dsn, OURS, "append")
    assert psycopg2_plans.plan(dsn, OURS, "keep").sent == "job"
    assert psycopg2_plans.plan(dsn, OURS, "keep").dsn is None  # libpq sends "job" itself
    # an explicit application_name ignores PGAPPNAME: cached across its changes
    explicit = "host=127.0.0.1 dbname=d application_name=app"
    hit = psycopg2_plans.plan(explicit, OURS, "append")
    monkeypatch.setenv("PGAPPNAME", "other")
    assert psycopg2_plans.plan(explicit, OURS, "append") is hit


def test_psycopg2_plan_bounded(psycopg2_plans: Any) -> None:
    for i in range(1000):
        psycopg2_plans.plan(f"host=h{i} dbname=d", OURS, "append")
    assert 0 < len(psycopg2_plans._CACHE) <= psycopg2_plans._CACHE_MAX


# ----------------------------------------------------------------------------- pyodbc

DRIVER = "Driver=Simba Spark ODBC Driver;Host=adb-1.2.azuredatabricks.net;Port=443;UID=token;PWD=x"


def _settings(ua: str = OURS, mode: str = "append") -> Any:
    from ua_autotag.settings import Settings
    from ua_autotag.value import UserAgent

    return Settings(UserAgent.parse(ua), mode=mode)


@settings(max_examples=150, deadline=None)
@given(
    entry=st.one_of(st.none(), plain.filter(lambda s: not set(s) & set(";{}="))),
    keyword=st.one_of(st.none(), plain),
    positional=st.booleans(),
    mode=st.sampled_from(MODES),
    host=st.sampled_from(["adb-1.2.azuredatabricks.net", "db.example.com"]),
)
def test_pyodbc_plan_cached_equals_uncached(
    entry: Any, keyword: Any, positional: bool, mode: str, host: str
) -> None:
    from ua_autotag.integrations import pyodbc as integration

    text = DRIVER.replace("adb-1.2.azuredatabricks.net", host)
    if "example" in host:
        text = text.replace("Simba Spark ODBC Driver", "PostgreSQL")
    if entry is not None:
        text += f";UserAgentEntry={entry}"
    kwargs = {} if keyword is None else {"UserAgentEntry": keyword}
    settings_ = _settings(mode=mode)
    expected = integration.make_plan(settings_, text, positional, kwargs, OURS, mode)
    assert integration.plan(settings_, text, positional, kwargs, OURS, mode) == expected
    assert integration.plan(settings_, text, positional, kwargs, OURS, mode) == expected


def test_pyodbc_plan_changed_value_mode_or_types_miss() -> None:
    from ua_autotag.integrations import pyodbc as integration

    settings_ = _settings()
    text = DRIVER + ";UserAgentEntry=app/1"
    first = integration.plan(settings_, text, True, {}, OURS, "append")
    assert first.text is not None and first.text.endswith(f"UserAgentEntry=app/1 {OURS}")
    assert integration.plan(settings_, text, True, {}, OURS, "append") is first
    other = integration.plan(settings_, text, True, {}, OTHER, "append")
    assert other.text is not None and other.text.endswith(f"app/1 {OTHER}")
    assert integration.plan(settings_, text, True, {}, OURS, "keep").text is None
    assert integration.plan(settings_, text, True, {}, OURS, "replace").sent == OURS
    # equal keyword values of other types render differently: never one entry for both
    one = integration.plan(
        settings_, "", False, {"Driver": "Simba Spark", "Port": 1}, OURS, "append"
    )
    true = integration.plan(
        settings_, "", False, {"Driver": "Simba Spark", "Port": True}, OURS, "append"
    )
    assert one is not true
    # unhashable keyword values: planned every time, same answer
    attrs = {"attrs_before": {1: 2}}
    assert integration.plan(
        settings_, DRIVER, True, attrs, OURS, "append"
    ) == integration.make_plan(settings_, DRIVER, True, attrs, OURS, "append")


def test_pyodbc_plan_bounded_and_per_settings() -> None:
    from ua_autotag.integrations import pyodbc as integration

    settings_ = _settings()
    for i in range(1000):
        integration.plan(settings_, f"{DRIVER};Port={i}", True, {}, OURS, "append")
    assert 0 < len(settings_.cache[integration._SETTINGS_KEY]) <= integration._CACHE_MAX
    fresh = _settings()
    assert integration._SETTINGS_KEY not in fresh.cache  # another settings object: its own
