"""ODBC connection strings and JDBC URL parameters: ``UserAgentEntry``, escaping kept.

Carrier ``odbc`` (:data:`ua_autotag.merge.CARRIERS`).

Pure functions: the caller's text in, the text to send out, byte for byte where untouched.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .tokens import merge_tokens

__all__ = [
    "USER_AGENT_ENTRY",
    "OdbcAttribute",
    "merge_call",
    "merge_odbc_attribute",
    "odbc_attributes",
    "odbc_quote",
]

#: UserAgentEntry: the attribute the Databricks (Simba Spark) ODBC and JDBC drivers read.
USER_AGENT_ENTRY = "UserAgentEntry"


class OdbcAttribute(NamedTuple):
    """One ``key=value`` of an ODBC connection string; ``start:end`` is the raw value."""

    key: str  # as written, stripped
    value: str  # unescaped (braces removed, ``}}`` -> ``}``)
    start: int
    end: int
    braced: bool


def odbc_attributes(text: str, braces: bool = True) -> Tuple[OdbcAttribute, ...]:
    """Parse ``key=value;...`` (ODBC connection string, JDBC URL parameters).

    A value starting with ``{`` runs to the matching ``}`` (``}}`` is a literal ``}``),
    as in the ODBC ``SQLDriverConnect`` grammar; ``braces=False`` reads every value up
    to the next ``;`` (JDBC URLs). Text without ``=`` up to a ``;`` is skipped.
    (Not cached on purpose: connection strings carry passwords.)
    """
    if not braces or "{" not in text:
        return _plain_attributes(text)
    attrs: List[OdbcAttribute] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        semi = text.find(";", i)
        if eq < 0:
            break
        if 0 <= semi < eq:  # a segment without '=': not an attribute
            i = semi + 1
            continue
        key = text[i:eq].strip()
        j = eq + 1
        if braces and text.startswith("{", j):
            k = j + 1
            while True:
                k = text.find("}", k)
                if k < 0 or not text.startswith("}", k + 1):
                    break
                k += 2  # "}}" is a literal "}"
            end = n if k < 0 else k + 1
            inner = text[j + 1 : end - 1 if k >= 0 else n]
            attrs.append(OdbcAttribute(key, inner.replace("}}", "}"), j, end, True))
            semi = text.find(";", end)
        else:
            end = n if semi < 0 else semi
            attrs.append(OdbcAttribute(key, text[j:end], j, end, False))
        i = n if semi < 0 else semi + 1
    return tuple(attrs)


def _plain_attributes(text: str) -> Tuple[OdbcAttribute, ...]:
    """:func:`odbc_attributes` for text without braces: one ``split``, C speed."""
    attrs: List[OdbcAttribute] = []
    start = 0
    for segment in text.split(";"):
        key, eq, value = segment.partition("=")
        if eq:
            begin = start + len(key) + 1
            attrs.append(OdbcAttribute(key.strip(), value, begin, begin + len(value), False))
        start += len(segment) + 1
    return tuple(attrs)


def odbc_quote(value: str, braced: bool = False) -> str:
    """``value`` as an ODBC attribute value: in ``{...}`` (``}`` doubled) when needed.

    Braces are needed for ``;``, ``{``, ``}`` and leading/trailing blanks; ``braced``
    keeps a caller's braces. Our own value never needs them (its characters exclude
    ``;{}=`` and blanks), so an untouched caller style is kept byte for byte.
    """
    if braced or any(c in value for c in ";{}") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def merge_odbc_attribute(text: str, key: str, ours: str, mode: str, braces: bool = True) -> str:
    """``text`` with attribute ``key`` (case-insensitive) merged per ``mode``.

    Each occurrence of ``key`` has its value merged with :func:`merge_tokens` in place
    (the rest of ``text`` is kept byte for byte, the caller's braces too); without one,
    ``key=ours`` is appended (after a ``;`` unless ``text`` is empty or ends with one).
    """
    wanted = key.lower()
    found = [a for a in odbc_attributes(text, braces) if a.key.lower() == wanted]
    if not found:
        stripped = text.rstrip()
        if not stripped:
            return f"{key}={ours}"
        if stripped.endswith(";"):
            return f"{text}{key}={ours};" if text == stripped else f"{stripped}{key}={ours}"
        return f"{text};{key}={ours}"
    out, last = [], 0
    for attr in found:
        existing = attr.value.strip() or None
        merged = merge_tokens(existing, ours, mode)
        unchanged = merged == existing
        out.append(text[last : attr.start])
        if unchanged:
            out.append(text[attr.start : attr.end])
        else:
            out.append(odbc_quote(merged, attr.braced) if braces else merged)
        last = attr.end
    out.append(text[last:])
    return "".join(out)


def merge_call(
    text: str,
    parsed: Tuple[OdbcAttribute, ...],
    positional: bool,
    kwargs: Dict[str, Any],
    ours: str,
    mode: str,
) -> Tuple[Optional[str], Tuple[Tuple[str, Any], ...], Optional[str]]:
    """One ``pyodbc.connect(text, **kwargs)`` call with ``ours`` merged in: (the text to
    pass instead or None, keywords to set, the ``UserAgentEntry`` the driver gets).

    A caller's ``UserAgentEntry`` (string or keyword, any case) is merged in place per
    mode, its escaping kept; otherwise ours is appended to the string (or passed as a
    keyword when the caller gave keywords only). ``parsed`` is ``odbc_attributes(text)``.
    """
    entries = [a for a in parsed if a.key.lower() == "useragententry"]
    keyword = next((k for k in kwargs if k.lower() == "useragententry"), None)
    new_kwargs: Tuple[Tuple[str, Any], ...] = ()
    new_text: Optional[str] = None
    sent: Optional[str] = None
    if keyword is not None:
        value = kwargs[keyword]
        existing = value.strip() if isinstance(value, str) else None
        sent = merge_tokens(existing or None, ours, mode)
        if sent != existing:
            new_kwargs = ((keyword, odbc_quote(sent)),)
    if entries or (keyword is None and positional):
        merged = merge_odbc_attribute(text, USER_AGENT_ENTRY, ours, mode)
        new_text = None if merged == text else merged
        first = entries[0].value.strip() if entries else ""
        sent = merge_tokens(first or None, ours, mode)
    elif keyword is None:  # keywords only: add ours the same way
        new_kwargs = ((USER_AGENT_ENTRY, ours),)
        sent = ours
    return new_text, new_kwargs, sent
