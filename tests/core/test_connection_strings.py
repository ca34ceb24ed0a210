"""The one-parameter edits of PostgreSQL URIs and conninfo strings (connectorx, ADBC)."""

from __future__ import annotations

import pytest

from ua_autotag.merge.libpq import (
    conninfo_parameter,
    uri_parameter,
    with_conninfo_parameter,
    with_uri_parameter,
)

URI = "postgresql://u:p%40ss%26x@h:5432/db?sslmode=disable&application_name=a%20b&options=-c%20x%3D1"


def test_uri_reads_the_last_value_percent_decoded_plus_kept() -> None:
    assert uri_parameter(URI, "application_name") == "a b"
    assert uri_parameter(URI + "&application_name=c+d", "application_name") == "c+d"
    assert uri_parameter("postgresql://h/db", "application_name") is None
    assert uri_parameter("postgresql://h/db?application_name=", "application_name") == ""


def test_uri_rewrite_keeps_everything_else_byte_for_byte() -> None:
    out = with_uri_parameter(URI, "application_name", "etl Acme/1 Grüße's")
    assert out == ("postgresql://u:p%40ss%26x@h:5432/db?sslmode=disable&options=-c%20x%3D1"
                   "&application_name=etl%20Acme%2F1%20Gr%C3%BC%C3%9Fe%27s")
    assert uri_parameter(out, "application_name") == "etl Acme/1 Grüße's"
    assert with_uri_parameter("postgres://h", "application_name", "x") == (
        "postgres://h?application_name=x")


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("host=h application_name=plain user=u", "plain"),
        ("host=h application_name = 'with space' user=u", "with space"),
        (r"application_name='it\'s \\ ok'", "it's \\ ok"),
        (r"application_name=a\ b", "a b"),
        ("application_name=first application_name=second", "second"),
        ("host=h", None),
        ("", None),
    ],
)
def test_conninfo_reads_like_libpq(conninfo: str, expected: str) -> None:
    assert conninfo_parameter(conninfo, "application_name") == expected


@pytest.mark.parametrize("value", ["plain", "with space", "it's", "back\\slash", "Grüße"])
def test_conninfo_append_round_trips(value: str) -> None:
    out = with_conninfo_parameter("host=h password='p w' application_name=old ", "application_name",
                                  value)
    assert out.startswith("host=h password='p w' application_name=old ")
    assert conninfo_parameter(out, "application_name") == value
    assert conninfo_parameter(out, "password") == "p w"
