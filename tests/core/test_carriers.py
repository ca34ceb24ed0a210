"""Merge rules: append once / replace / keep, and the 63-byte application_name limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ua_autotag.merge.libpq import merge_application_name, pg_display_bytes
from ua_autotag.merge.tokens import merge_tokens

OURS = "AcmePartner_DatEngProduct/3.5"


@pytest.mark.parametrize(
    ("existing", "mode", "expected"),
    [
        (None, "append", OURS),
        ("", "keep", OURS),
        ("app/1", "append", f"app/1 {OURS}"),
        (f"app/1 {OURS}", "append", f"app/1 {OURS}"),
        ("app/1", "replace", OURS),
        ("app/1", "keep", "app/1"),
    ],
)
def test_merge_tokens(existing: str | None, mode: str, expected: str) -> None:
    assert merge_tokens(existing, OURS, mode) == expected


@given(st.text(max_size=300), st.sampled_from(["append", "replace", "keep"]))
def test_merge_tokens_is_idempotent_and_never_duplicates(existing: str, mode: str) -> None:
    once = merge_tokens(existing, OURS, mode)
    assert merge_tokens(once, OURS, mode) == once
    if mode != "keep" or not existing:
        assert once.split().count(OURS) >= 1
    if OURS not in existing:
        assert once.split().count(OURS) <= 1


@pytest.mark.parametrize(
    ("existing", "mode", "expected"),
    [
        (None, "append", OURS),
        ("myapp", "append", f"myapp {OURS}"),
        ("myapp", "replace", OURS),
        ("myapp", "keep", "myapp"),
        (f"myapp {OURS}", "append", f"myapp {OURS}"),
    ],
)
def test_merge_application_name(existing: str | None, mode: str, expected: str) -> None:
    assert merge_application_name(existing, OURS, mode) == expected


def test_long_caller_value_is_cut_never_ours() -> None:
    merged = merge_application_name("x" * 100, OURS, "append")
    assert merged.endswith(" " + OURS) and len(merged.encode()) == 63


def test_non_ascii_caller_value_is_cut_on_a_character_boundary() -> None:
    merged = merge_application_name("é" * 40, OURS, "append")
    assert merged.endswith(" " + OURS)
    merged.encode("utf-8")  # no half characters
    assert pg_display_bytes(merged) <= 63  # even where PostgreSQL 16+ escapes each byte as \xNN


@given(st.text(max_size=200), st.sampled_from(["append", "replace"]))
def test_application_name_always_fits_and_carries_ours_once(existing: str, mode: str) -> None:
    merged = merge_application_name(existing, OURS, mode)
    assert pg_display_bytes(merged) <= 63
    assert merged.split(" ").count(OURS) == 1
    assert merged.endswith(OURS)
