"""Planted credentials, every input shape, every client: never in our spans, logs or errors.

Each case connects for real (the local PostgreSQL, the local HTTP peer) with a secret
planted where a user would put it, with DEBUG logging on and spans recording, and then
searches everything ua-autotag produced: span names, attributes, events, status text,
our log records and warnings.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable

import pytest

import ua_autotag
from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"
SECRET = "Pl4ntedS3cret"
TOKEN = "dapi0123456789abcdef0123456789abcdef"


def _produced(spans: Any, records: list[logging.LogRecord], caught: list[Any]) -> str:
    text = []
    for span in spans.get_finished_spans():
        text += [span.name, str(span.status.description)]
        text += [f"{k}={v}" for k, v in span.attributes.items()]
        for event in span.events:
            text += [f"{k}={v}" for k, v in event.attributes.items()]
    text += [r.getMessage() for r in records if r.name.startswith("ua_autotag")]
    text += [str(w.message) for w in caught]
    return "\n".join(text)


def _pg_cases() -> dict[str, Callable[[], Any]]:
    bad = "no_such_db_for_secrets"

    def psycopg_conninfo() -> Any:
        import psycopg

        return psycopg.connect(f"{pg.DSN} password={SECRET}")

    def psycopg_uri_bad_db() -> Any:
        import psycopg

        return psycopg.connect(f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{bad}")

    def psycopg_kwargs() -> Any:
        import psycopg

        return psycopg.connect(pg.DSN, password=SECRET)

    def psycopg2_dsn_bad_db() -> Any:
        import psycopg2

        return psycopg2.connect(
            f"host={pg.HOST} port={pg.PORT} user={pg.USER} dbname={bad} password={SECRET}"
        )

    def psycopg2_uri() -> Any:
        import psycopg2

        return psycopg2.connect(f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}")

    def asyncpg_dsn_bad_db() -> Any:
        import asyncio

        import asyncpg

        async def go() -> Any:
            conn = await asyncpg.connect(
                f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{bad}"
            )
            await conn.close()

        return asyncio.run(go())

    return {
        f.__name__: f
        for f in (
            psycopg_conninfo,
            psycopg_uri_bad_db,
            psycopg_kwargs,
            psycopg2_dsn_bad_db,
            psycopg2_uri,
            asyncpg_dsn_bad_db,
        )
    }


PG_CASES = _pg_cases()


@pytest.mark.parametrize("case", sorted(PG_CASES))
def test_postgres_inputs(
    case: str, pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            conn = PG_CASES[case]()
            if conn is not None:
                conn.close()
        except Exception as exc:  # the driver's own error may echo its input; ours may not
            assert "bad_db" in case, f"{case} should connect: {type(exc).__name__}"
    assert any(s.attributes.get("ua_autotag.integration") for s in spans.get_finished_spans())
    assert SECRET not in _produced(spans, caplog.records, caught)


def test_databricks_sdk_token(http_peer: Any, spans: Any, caplog: pytest.LogCaptureFixture) -> None:
    from databricks.sdk import WorkspaceClient

    http_peer.route("GET", "/api/2.0/preview/scim/v2/Me", (200, {"userName": "u"}))
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        WorkspaceClient(host=http_peer.url, token=TOKEN).current_user.me()
    assert any(UA in ua for ua in http_peer.user_agents())
    assert spans.get_finished_spans()
    assert TOKEN not in _produced(spans, caplog.records, caught)


def test_sql_connector_token(http_peer: Any, spans: Any, caplog: pytest.LogCaptureFixture) -> None:
    from databricks import sql

    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception):  # noqa: B017 - the peer answers 404; any error is fine
            sql.connect(
                server_hostname="127.0.0.1",
                http_path="/x",
                access_token=TOKEN,
                _connection_uri=f"{http_peer.url}/x",
                enable_telemetry=False,
                _retry_stop_after_attempts_count=1,
            )
    assert any(UA in ua for ua in http_peer.user_agents())
    assert spans.get_finished_spans()
    assert TOKEN not in _produced(spans, caplog.records, caught)


def test_rest_authorization_header(
    http_peer: Any, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import requests

    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        requests.get(
            f"{http_peer.url}/api/2.1/unity-catalog/catalogs",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert http_peer.user_agents()[-1].endswith(UA)
    assert TOKEN not in _produced(spans, caplog.records, caught)


def test_scrub_masks_every_credential_shape() -> None:
    from ua_autotag.scrub import scrub

    shapes = [
        f"host=h password={SECRET} dbname=d",
        f"host=h password='{SECRET} x' dbname=d",
        f"postgresql://user:{SECRET}@h:5432/d",
        f"Driver={{Simba}};PWD={{{SECRET}}};Host=h",
        f"Driver=x;PWD={SECRET};UID=token",
        f"Authorization: Bearer {SECRET}",
        f"access_token={SECRET}&x=1",
        f"token: {SECRET}",
        f"sc://h:443/;token={SECRET};user_agent=x",
        f"failed with {TOKEN}",
    ]
    for text in shapes:
        masked = scrub(text)
        assert SECRET not in masked and TOKEN not in masked, masked
