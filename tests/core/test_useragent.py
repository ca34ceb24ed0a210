"""Validation of the partner value: every rule, good and bad, and generated input."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ua_autotag import InvalidUserAgent, UserAgent
from ua_autotag.value import MAX_LENGTH

GOOD = [
    ("AcmePartner_DatEngProduct/3.5", ("AcmePartner", "DatEngProduct", "3.5")),
    ("AcmePartner_DatEngProduct", ("AcmePartner", "DatEngProduct", None)),
    (
        "Acme-Partner_Dat_Eng.Product/1.2.3-rc.1+build.7",
        ("Acme-Partner", "Dat_Eng.Product", "1.2.3-rc.1+build.7"),
    ),
    ("a_b/v2", ("a", "b", "v2")),
    ("9lives_X/0", ("9lives", "X", "0")),
]


@pytest.mark.parametrize(("text", "parts"), GOOD)
def test_good_values_round_trip(text: str, parts: tuple) -> None:
    ua = UserAgent.parse(text)
    assert (ua.isv, ua.product, ua.version) == parts
    assert str(ua) == text
    assert UserAgent(*parts) == ua and hash(UserAgent(*parts)) == hash(ua)


def test_parts_constructor_and_name() -> None:
    ua = UserAgent("AcmePartner", "DatEngProduct", "3.5")
    assert str(ua) == "AcmePartner_DatEngProduct/3.5"
    assert ua.name == "AcmePartner_DatEngProduct"
    assert str(UserAgent("AcmePartner", "DatEngProduct")) == "AcmePartner_DatEngProduct"
    with pytest.raises(AttributeError):
        ua.isv = "x"  # type: ignore[misc]


BAD = [
    ("AcmePartnerDatEngProduct/3.5", "with '_' between isv and product"),
    ("_DatEngProduct/3.5", "isv must not be empty"),
    ("AcmePartner_/3.5", "product must not be empty"),
    ("AcmePartner_DatEngProduct/", "version must not be empty"),
    ("AcmePartner_DatEng/3.5/1", "at most one '/'"),
    ("Acme Partner_DatEngProduct/3.5", "must not contain whitespace"),
    ("AcmePartner_DatEngProduct/3.5\r\nX-Evil: 1", "must not contain CR or LF"),
    ("AcmePartner_DatEng\nProduct", "must not contain CR or LF"),
    ("AcmePartner_DatEng\x00Product", "must not contain control characters"),
    ("AcmePartner_DatEng\tProduct", "must not contain control characters"),
    ("AcmePartner_DatEng\x7fProduct", "must not contain control characters"),
    ("AcméPartner_DatEngProduct", "must be ASCII"),
    ("AcmePartner_DatEngProduct/3.5ü", "must be ASCII"),
    ("Acme;Partner_X", "must contain only letters"),
    ("AcmePartner_Dat=Eng", "must contain only letters"),
    ("AcmePartner_{Dat}", "must contain only letters"),
    ("AcmePartner_-x", "must start with a letter or digit"),
    ("AcmePartner_" + "x" * MAX_LENGTH, f"at most {MAX_LENGTH} characters"),
    ("Acme Partner", "must not contain whitespace"),
]


@pytest.mark.parametrize("text", ["bad value", "Acme Partner", "bad;value/1"])
def test_a_value_without_its_underscore_blames_the_whole_value(text: str) -> None:
    """No '_' yet means no product part: the rule named is the value's, not "product"'s."""
    with pytest.raises(InvalidUserAgent) as info:
        UserAgent.parse(text)
    assert str(info.value).startswith("User-Agent must "), info.value
    assert "product" not in str(info.value).split(":")[0]


@pytest.mark.parametrize(("text", "rule"), BAD)
def test_bad_values_name_the_rule_and_the_value(text: str, rule: str) -> None:
    with pytest.raises(InvalidUserAgent) as info:
        UserAgent.parse(text)
    message = str(info.value)
    assert rule in message
    assert repr(text[:MAX_LENGTH])[:20] in message  # the offending value, as repr
    assert isinstance(info.value, ValueError)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidUserAgent, match="must be a str"):
        UserAgent.coerce(42)
    with pytest.raises(InvalidUserAgent, match="version must be a string"):
        UserAgent("a", "b", 3.5)  # type: ignore[arg-type]


def test_render_checks_the_carrier_limit() -> None:
    ua = UserAgent("Acme", "P" * 60, "1.0")  # 69 characters
    assert ua.render("http-user-agent") == str(ua)
    with pytest.raises(InvalidUserAgent, match="63-byte limit of PostgreSQL"):
        ua.render("application_name")


SAFE = string.ascii_letters + string.digits + "_.+-/"


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_anything_accepted_is_safe_for_every_carrier(text: str) -> None:
    """Generated input: either a clear InvalidUserAgent, or a value every carrier can carry."""
    try:
        ua = UserAgent.parse(text)
    except InvalidUserAgent as exc:
        assert str(exc).startswith("User-Agent")
        return
    rendered = str(ua)
    assert rendered == text
    assert all(ch in SAFE for ch in rendered)
    assert rendered.count("/") <= 1 and "_" in rendered
    assert len(rendered) <= MAX_LENGTH


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,20}", fullmatch=True),
    st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,10}", fullmatch=True),
)
def test_valid_parts_always_parse_back(isv: str, product: str, version: str | None) -> None:
    ua = UserAgent(isv, product, version)
    assert UserAgent.parse(str(ua)) == ua


def test_empty_value_names_the_rule() -> None:
    with pytest.raises(InvalidUserAgent, match="must not be empty: ''"):
        UserAgent.parse("")
    with pytest.raises(InvalidUserAgent, match="user_agent: User-Agent must not be empty"):
        __import__("ua_autotag").instrument("")
