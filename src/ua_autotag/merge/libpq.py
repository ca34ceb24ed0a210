"""libpq ``application_name`` (psycopg, psycopg2, asyncpg, PGAPPNAME): 63 bytes, caller first.

Pure functions: (the caller's value, ours, mode) -> what to send.
"""

from __future__ import annotations

import functools

from . import APPLICATION_NAME_LIMIT, debug, own_value

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: the launcher merges PGAPPNAME through here
    from typing import Any, List, Mapping, Optional, Tuple

__all__ = [
    "conninfo_parameter",
    "libpq_application_name",
    "merge_application_name",
    "pg_display_bytes",
    "pgappname",
    "uri_parameter",
    "with_conninfo_parameter",
    "with_uri_parameter",
]


def pg_display_bytes(text: str) -> int:
    """Bytes ``text`` takes in ``pg_stat_activity.application_name``, worst case.

    PostgreSQL <= 15 shows each non-printable or non-ASCII byte as ``?`` (1 byte);
    16+ (Lakebase) writes ``\\xNN`` (4 bytes) *before* cutting at 63 bytes. We count
    the worst case so our tag is never the part that gets cut.
    """
    if text.isascii() and text.isprintable():  # the usual case, at C speed
        return len(text)
    total = 0
    for ch in text:
        total += 1 if " " <= ch <= "~" else 4 * len(ch.encode("utf-8", "surrogatepass"))
    return total


def _fit(text: str, budget: int) -> str:
    """The longest prefix of ``text`` (whole characters) within ``budget`` display bytes."""
    if text.isascii() and text.isprintable():  # one display byte per character
        return text[: max(budget, 0)]
    used = 0
    for index, ch in enumerate(text):
        used += 1 if " " <= ch <= "~" else 4 * len(ch.encode("utf-8", "surrogatepass"))
        if used > budget:
            return text[:index]
    return text


def merge_application_name(
    existing: Optional[str], ours: str, mode: str, limit: int = APPLICATION_NAME_LIMIT
) -> str:
    """Merge ``ours`` into a libpq ``application_name`` within ``limit`` bytes.

    ``append`` gives ``"<caller's value> <ours>"``; when that is too long the caller's
    part is cut (on a character boundary, never ours) and the cut is logged at DEBUG.
    Our value alone always fits: the carrier check at configuration time saw to it.
    The result depends only on the arguments: it is cached (bounded), the cut logged
    on each call that cuts.
    """
    merged, cut = _merge_application_name(existing, ours, mode, limit)
    if cut is not None:
        debug(
            "ua_autotag: application_name cut to fit %d bytes: kept %d of %d characters of "
            "the caller's value",
            limit,
            *cut,
        )
    return merged


@functools.lru_cache(maxsize=256)  # (caller's value, ours, mode): a few per process
def _merge_application_name(
    existing: Optional[str], ours: str, mode: str, limit: int
) -> Tuple[str, Optional[Tuple[int, int]]]:
    """:func:`merge_application_name` without the log: (merged, (kept, of) if cut)."""
    if not existing or mode == "replace":
        return ours, None
    if mode == "keep":
        return existing, None
    tokens = existing.split(" ")
    if ours in tokens:
        if pg_display_bytes(existing) <= limit:
            return existing, None
        existing = " ".join(t for t in tokens if t != ours).strip()
        if not existing:
            return ours, None
    budget = limit - len(ours) - 1
    user_part = _fit(existing, budget).rstrip(" ")
    cut = None if user_part == existing else (len(user_part), len(existing))
    return (f"{user_part} {ours}" if user_part else ours), cut


def libpq_application_name(
    params: Mapping[str, Any], environ: Mapping[str, str], own: bool = False
) -> Optional[str]:
    """The ``application_name`` libpq would send for ``params``, without us.

    libpq's precedence: an explicit ``application_name`` (keyword, conninfo or URI;
    an explicit empty value counts and hides the environment) beats ``PGAPPNAME``,
    which beats ``fallback_application_name``. With ``own``, a ``PGAPPNAME`` the
    launcher exported counts as the caller's original one: that is the caller's value
    for the merge. (A service file entry is not read: see the README.)
    """
    value = params.get("application_name")
    if value is not None:
        return str(value)
    env = own_value(environ, "PGAPPNAME") if own else environ.get("PGAPPNAME")
    if env is not None:
        return env
    fallback = params.get("fallback_application_name")
    return None if fallback is None else str(fallback)


def pgappname(existing: Optional[str], ours: str, mode: str, fallback: Optional[str] = None) -> str:
    """The ``PGAPPNAME`` to export for libpq programs started as subprocesses (psql...).

    ``existing`` is the ``PGAPPNAME`` already in the launcher's environment,
    ``fallback`` the program's own name (psql sets ``fallback_application_name=psql``).
    What the server then records, by libpq precedence:

    1. an ``application_name`` on the program's command line / conninfo / URI wins
       outright (libpq never reads ``PGAPPNAME`` then: nothing we export can merge);
    2. else ``PGAPPNAME``, i.e. this function's result: ``append`` gives
       ``"<existing or fallback> <ours>"`` (the caller's part cut to fit 63 bytes,
       ours whole, never twice), ``replace`` gives ours, ``keep`` leaves an existing
       ``PGAPPNAME`` (or, failing that, ``fallback``) alone;
    3. ``fallback_application_name`` is shown only when ``PGAPPNAME`` is unset.
    """
    return merge_application_name(existing or fallback, ours, mode)


# ------------------------------------------------ a parameter inside a URI or conninfo
#
# For clients that take one connection string and nothing else (connectorx, ADBC): the
# value goes into the string itself. Only the one parameter is read or rewritten; the
# rest of the string (credentials included) is kept byte for byte and never logged.

URI_SCHEMES = ("postgresql://", "postgres://")


def uri_parameter(uri: str, name: str) -> Optional[str]:
    """The percent-decoded value of ``?name=`` in a PostgreSQL URI (the last one wins);
    None if absent. ``+`` stays ``+``: libpq and rust-postgres decode ``%XX`` only."""
    from urllib.parse import unquote

    found = None
    for part in uri.partition("?")[2].split("&"):
        key, eq, value = part.partition("=")
        if eq and key == name:
            found = unquote(value)
    return found


def with_uri_parameter(uri: str, name: str, value: str) -> str:
    """``uri`` with ``?name=value`` (percent-encoded) in place of any ``name`` it had."""
    from urllib.parse import quote

    base, _, query = uri.partition("?")
    kept = [p for p in query.split("&") if p and p.partition("=")[0] != name]
    kept.append(f"{name}={quote(value, safe='')}")
    return f"{base}?{'&'.join(kept)}"


def _conninfo_pairs(conninfo: str) -> List[Tuple[str, str]]:
    """``key = value`` pairs of a libpq conninfo string, parsed as libpq does (values
    bare or single-quoted, backslash escapes); stops at the first malformed pair."""
    pairs: List[Tuple[str, str]] = []
    text, i, n = conninfo, 0, len(conninfo)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if not key or i >= n or text[i] != "=":
            break
        i += 1
        while i < n and text[i].isspace():
            i += 1
        quoted = i < n and text[i] == "'"
        i += quoted
        chars = []
        while i < n and (text[i] != "'" if quoted else not text[i].isspace()):
            if text[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(text[i])
            i += 1
        i += quoted
        pairs.append((key, "".join(chars)))
    return pairs


def conninfo_parameter(conninfo: str, name: str) -> Optional[str]:
    """The value of ``name`` in a ``key=value`` conninfo string (the last one wins)."""
    found = None
    for key, value in _conninfo_pairs(conninfo):
        if key == name:
            found = value
    return found


def with_conninfo_parameter(conninfo: str, name: str, value: str) -> str:
    """``conninfo`` with ``name='value'`` appended: libpq keeps the last of a repeated key."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{conninfo.rstrip()} {name}='{escaped}'"
