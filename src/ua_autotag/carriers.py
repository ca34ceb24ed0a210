"""Merge rules shared by integrations: append / replace / keep, idempotent, limit-aware.

Every function here is pure: (the caller's value, ours, mode) -> what to send.
``None`` or ``""`` for the caller's value means "not set".
"""

from __future__ import annotations

import logging
from typing import Any, List, Mapping, NamedTuple, Optional, Tuple

__all__ = ["merge_application_name", "merge_product_token", "merge_tokens", "pg_display_bytes"]

logger = logging.getLogger("ua_autotag")

APPLICATION_NAME_LIMIT = 63  # NAMEDATALEN - 1: PostgreSQL silently cuts the rest


def merge_tokens(existing: Optional[str], ours: str, mode: str, sep: str = " ") -> str:
    """Merge ``ours`` into a space-separated token list (User-Agent style).

    ``append`` keeps the caller's value and adds ours once (a no-op if our token is
    already there); ``replace`` sends ours only; ``keep`` leaves a caller's value alone.
    """
    if not existing or mode == "replace":
        return ours
    if mode == "keep":
        return existing
    if ours in existing.split():
        return existing
    return f"{existing}{sep}{ours}"


def pg_display_bytes(text: str) -> int:
    """Bytes ``text`` takes in ``pg_stat_activity.application_name``, worst case.

    PostgreSQL <= 15 shows each non-printable or non-ASCII byte as ``?`` (1 byte);
    16+ (Lakebase) writes ``\\xNN`` (4 bytes) *before* cutting at 63 bytes. We count
    the worst case so our tag is never the part that gets cut.
    """
    total = 0
    for ch in text:
        total += 1 if " " <= ch <= "~" else 4 * len(ch.encode("utf-8", "surrogatepass"))
    return total


def _fit(text: str, budget: int) -> str:
    """The longest prefix of ``text`` (whole characters) within ``budget`` display bytes."""
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
    """
    if not existing or mode == "replace":
        return ours
    if mode == "keep":
        return existing
    tokens = existing.split(" ")
    if ours in tokens:
        if pg_display_bytes(existing) <= limit:
            return existing
        existing = " ".join(t for t in tokens if t != ours).strip()
        if not existing:
            return ours
    budget = limit - len(ours) - 1
    user_part = _fit(existing, budget).rstrip(" ")
    if user_part != existing:
        logger.debug(
            "ua_autotag: application_name cut to fit %d bytes: kept %d of %d characters of "
            "the caller's value",
            limit,
            len(user_part),
            len(existing),
        )
    return f"{user_part} {ours}" if user_part else ours


def merge_product_token(existing: Optional[str], ours: str, mode: str) -> str:
    """Merge ``ours`` into a User-Agent that lists several products (``name/version``).

    For headers composed by a client from many products (the Databricks SDK's
    ``<product>/<v> databricks-sdk-py/<v> python/<v> ... auth/pat``), where no token is
    the caller's alone to replace: every other product always stays. Products match
    on the name before ``/``:

    * ``append`` adds ours at the end unless the exact token is already there;
    * ``replace`` drops other versions of our product, then adds ours once;
    * ``keep`` adds ours only when no version of our product is there yet.
    """
    if not existing:
        return ours
    tokens = existing.split()
    if mode == "append":
        return existing if ours in tokens else f"{existing} {ours}"
    name = ours.split("/", 1)[0]
    same = [t for t in tokens if t.split("/", 1)[0] == name]
    if mode == "keep":
        return existing if same else f"{existing} {ours}"
    if same == [ours]:
        return existing
    kept = [t for t in tokens if t.split("/", 1)[0] != name]
    return " ".join([*kept, ours])


def libpq_application_name(params: Mapping[str, Any], environ: Mapping[str, str]) -> Optional[str]:
    """The ``application_name`` libpq would send for ``params``, without us.

    libpq's precedence: an explicit ``application_name`` (keyword, conninfo or URI;
    an explicit empty value counts and hides the environment) beats ``PGAPPNAME``,
    which beats ``fallback_application_name``. This is the caller's value for the
    merge, wherever it came from. (A service file entry is not read: see the README.)
    """
    value = params.get("application_name")
    if value is not None:
        return str(value)
    env = environ.get("PGAPPNAME")
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


# ----------------------------------------------------------- ODBC / JDBC attributes

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


# ----------------------------------------------------------------- REST User-Agent

#: User-Agent tokens of Databricks clients that carry our value through their own
#: integration (databricks_sdk, databricks_sql): the REST layer leaves them alone.
DATABRICKS_CLIENT_MARKERS = ("databricks-sdk-py/", "PyDatabricksSqlConnector/")

#: The default User-Agent of the HTTP libraries (``python-requests/2.32.3`` ...): a
#: library default is not a caller's explicit value, so ``keep`` still adds ours.
HTTP_LIBRARY_DEFAULTS = ("python-requests/", "python-httpx/", "python-urllib3/")


def merge_rest_user_agent(existing: Optional[str], ours: str, mode: str) -> str:
    """The User-Agent a REST call to a Databricks host sends; ``existing`` if no change.

    * our token already there (any mode): unchanged - never twice, even when two
      layers (requests over urllib3) or the SDK integration got there first;
    * a header built by the Databricks SDK or SQL connector: unchanged - those clients
      have their own integration, which merges per mode (and may be disabled on
      purpose);
    * an HTTP library's default (``python-requests/x``): ``keep`` acts as ``append``;
    * otherwise :func:`merge_tokens`.
    """
    if existing:
        if ours in existing.split():
            return existing
        for marker in DATABRICKS_CLIENT_MARKERS:
            if marker in existing:
                return existing
        if mode == "keep" and " " not in existing and existing.startswith(HTTP_LIBRARY_DEFAULTS):
            mode = "append"
    return merge_tokens(existing, ours, mode)


def copy_with_header(message: Any, name: str, value: str) -> Any:
    """A shallow copy of an HTTP request object with its own headers, ``name`` set.

    The client sends the copy, so the caller's object (and a redirect rebuilt from it)
    stays untouched. Shallow on purpose: ``requests``' own ``copy()`` deep-copies the
    cookie jar (~20 us) and nothing below the send step mutates it.
    """
    sent = object.__new__(type(message))
    sent.__dict__.update(message.__dict__)
    sent.headers = message.headers.copy()
    sent.headers[name] = value
    return sent
