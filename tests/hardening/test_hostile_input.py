"""Hostile caller values through the real clients' own parsing and quoting.

A caller's application_name may hold quotes, backslashes, ``=``, spaces, unicode, 10 kB
of text or a conninfo injection attempt. After our merge, the parameters the driver
receives must parse back to exactly the caller's parameters plus our merged
application_name: nothing injected, nothing lost, our tag intact.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ua_autotag
from ua_autotag.merge.libpq import merge_application_name
from ua_autotag.settings import resolve
from ua_autotag.spec import Tag

UA = "AcmePartner_DatEngProduct/3.5"

HOSTILE = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "x' password=evil",
            "x password=evil",
            "a\\' b",
            "='",
            "\\",
            "''",
            "a b=c",
            "app\r\nX-Injected: 1",
            "é" * 40,
            "x" * 10_000,
            "dbname=other host=evil",
        ]
    ),
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(user=HOSTILE, mode=st.sampled_from(["append", "replace", "keep"]))
def test_psycopg_params_keep_the_callers_keys(user: str, mode: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    user = user.replace("\x00", "")  # libpq strings cannot hold NUL: psycopg rejects it itself
    base = "host=127.0.0.1 port=5432 dbname=test user=postgres"
    ua_autotag.uninstrument()
    plain = psycopg.Connection._get_connection_params(base, application_name=user)
    ua_autotag.instrument(UA, mode=mode, spans=False)
    try:
        tagged = psycopg.Connection._get_connection_params(base, application_name=user)
    finally:
        ua_autotag.uninstrument()
    expected = merge_application_name(user or None, UA, mode)
    assert {k: v for k, v in tagged.items() if k != "application_name"} == {
        k: v for k, v in plain.items() if k != "application_name"
    }
    assert tagged["application_name"] == (user if mode == "keep" and user else expected)
    # what libpq will be handed round-trips through psycopg's own quoting
    assert conninfo_to_dict(make_conninfo("", **tagged)) == {k: str(v) for k, v in tagged.items()}
    assert "password" not in tagged


@FUZZ
@given(user=HOSTILE, mode=st.sampled_from(["append", "replace", "keep"]))
def test_psycopg2_dsn_is_rebuilt_with_its_own_quoting(user: str, mode: str) -> None:
    from psycopg2.extensions import make_dsn, parse_dsn

    from ua_autotag.integrations.psycopg2 import _before_connect

    user = user.replace("\x00", "")
    dsn = make_dsn("host=127.0.0.1 port=5432 dbname=test user=postgres", application_name=user)
    settings_ = resolve(UA, mode=mode, spans=False, environ={})
    ua = settings_.user_agent
    (new_dsn, *_), _ = _before_connect(Tag(ua, str(ua), settings_), None, (dsn,), {})
    before, after = parse_dsn(dsn), parse_dsn(new_dsn)
    assert {k: v for k, v in after.items() if k != "application_name"} == {
        k: v for k, v in before.items() if k != "application_name"
    }
    assert "password" not in after
    if mode != "keep" or not user:
        assert after["application_name"].split(" ").count(UA) == 1
        assert after["application_name"].endswith(UA)


@pytest.mark.parametrize("client", ["requests", "urllib3"])
@pytest.mark.parametrize("header", ["app\r\nX-Injected: 1", "app\nX: 1", "app\rX: 1"])
def test_invalid_caller_header_is_refused_by_the_client_not_passed_on(
    header: str, client: str, http_peer: Any
) -> None:
    """A caller's CR/LF User-Agent reaches our merge (past requests' own check on
    ``Request``: a prepared request edited afterwards, or urllib3 directly): we merge ours
    in and leave the caller's characters alone, so the HTTP client still refuses the
    header (``http.client``), naming the value with our token in it; nothing is sent."""
    import requests
    import urllib3

    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    url = f"{http_peer.url}/x"
    with pytest.raises(ValueError) as refused:
        if client == "requests":
            session = requests.Session()
            prepared = session.prepare_request(requests.Request("GET", url))
            prepared.headers["User-Agent"] = header
            session.send(prepared)
        else:
            urllib3.PoolManager().request("GET", url, headers={"User-Agent": header})
    assert "Invalid header value" in str(refused.value)
    assert repr(f"{header} {UA}".encode())[2:-1] in str(refused.value)  # ours was merged in
    assert http_peer.requests == []
