"""pyodbc: ``UserAgentEntry=<value>`` for connections to Databricks, and only those.

Patch point: ``pyodbc.connect`` (a C builtin, wrapped on the module; code that bound
``from pyodbc import connect`` before ``instrument()`` keeps the original).

A call is a Databricks connection when any of these holds (see :func:`is_databricks`):

1. its ``Driver`` (name or library path) contains, ASCII case-insensitively, one of
   ``databricks``, ``simba spark``, ``sparkodbc`` or an entry of
   ``UA_AUTOTAG_ODBC_DRIVERS`` (comma list);
2. its ``Host`` / ``Server`` is a Databricks host (:mod:`ua_autotag.hosts`: the cloud
   zones, ``DATABRICKS_HOST``, ``UA_AUTOTAG_REST_HOSTS``);
3. its ``DSN`` is listed in ``UA_AUTOTAG_ODBC_DSNS`` (comma list, case-insensitive), or
   the driver manager says (``pyodbc.dataSources()``, asked once per DSN and
   ``instrument()``) that the DSN uses a driver matching rule 1.

The attributes are read from the connection string and from the keyword form
(``pyodbc.connect(s, Server=..., **kw)``, which pyodbc appends as ``key=value;``;
``user``/``password``/``host`` mean ``UID``/``PWD``/``Server``). Anything else is left
untouched, byte for byte.

Where the value goes: a caller's ``UserAgentEntry`` (string or keyword, any case) is
merged in place per mode (:func:`ua_autotag.merge.odbc.merge_odbc_attribute`: ODBC
``{...}`` escaping, the caller's braces kept); otherwise ``UserAgentEntry=<value>``
is appended to the connection string (or passed as a keyword when the caller gave
keywords only). A ``UserAgentEntry`` set inside a DSN's ``odbc.ini`` section is not
visible here: the connection-string attribute is added (and overrides it).

One span per tagged connection (``db.system.name=databricks``), none for other targets.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from ..hosts import rules_for
from ..merge.odbc import (
    USER_AGENT_ENTRY,
    OdbcAttribute,
    merge_odbc_attribute,
    odbc_attributes,
    odbc_quote,
)
from ..merge.tokens import merge_tokens
from ..settings import Settings
from ..spec import Integration, Patch, Tag

logger = logging.getLogger("ua_autotag")

#: Driver name / path fragments of the Databricks and Simba Spark ODBC drivers.
DRIVER_PATTERNS = ("databricks", "simba spark", "sparkodbc")
ENV_DRIVERS = "UA_AUTOTAG_ODBC_DRIVERS"
ENV_DSNS = "UA_AUTOTAG_ODBC_DSNS"

# keywords pyodbc.connect consumes itself (not appended to the connection string)
_SPECIAL = frozenset({"autocommit", "ansi", "timeout", "readonly", "attrs_before", "encoding"})
_KEYWORD_ALIASES = {"user": "uid", "password": "pwd", "host": "server"}

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]


class OdbcRules:
    """Driver patterns and DSN names in force (computed once per settings object)."""

    __slots__ = ("drivers", "dsn_drivers", "dsns")

    def __init__(self, environ: Mapping[str, str]) -> None:
        extra = [d.strip().lower() for d in environ.get(ENV_DRIVERS, "").split(",")]
        self.drivers = DRIVER_PATTERNS + tuple(d for d in extra if d)
        self.dsns = frozenset(
            d.strip().lower() for d in environ.get(ENV_DSNS, "").split(",") if d.strip()
        )
        self.dsn_drivers: Dict[str, Optional[str]] = {}  # asked once per DSN

    def dsn_matches(self, dsn: str) -> bool:
        """A listed DSN, or one whose driver (per the driver manager) matches."""
        name = dsn.strip()
        if name.lower() in self.dsns:
            return True
        if name not in self.dsn_drivers:
            if len(self.dsn_drivers) >= 256:
                self.dsn_drivers.clear()
            self.dsn_drivers[name] = _dsn_driver(name)
        return self.driver_matches(self.dsn_drivers[name])

    def driver_matches(self, driver: Optional[str]) -> bool:
        if not driver:
            return False
        name = driver.lower()
        return any(p in name for p in self.drivers)


def rules(settings: Settings) -> OdbcRules:
    """The ODBC rules of ``settings`` (computed once per settings object)."""
    value: Optional[OdbcRules] = settings.cache.get("odbc")
    if value is None:
        value = settings.cache["odbc"] = OdbcRules(os.environ)
    return value


def _dsn_driver(dsn: str) -> Optional[str]:
    """The driver the driver manager lists for ``dsn`` (``pyodbc.dataSources()``)."""
    import pyodbc

    try:
        sources = pyodbc.dataSources()
    except Exception:  # no driver manager configuration: nothing to learn
        return None
    wanted = dsn.lower()
    for name, driver in sources.items():
        if name.lower() == wanted:
            return str(driver)
    return None


def effective_attributes(
    args: Args, kwargs: Kwargs, parsed: Optional[Tuple[OdbcAttribute, ...]] = None
) -> Dict[str, str]:
    """Lower-cased attribute -> value, as the driver manager will see them (first wins)."""
    found: Dict[str, str] = {}
    if parsed is None:
        parsed = odbc_attributes(args[0] if args and isinstance(args[0], str) else "")
    for attr in parsed:
        found.setdefault(attr.key.lower(), attr.value)
    for key, value in kwargs.items():
        name = key.lower()
        if name in _SPECIAL:
            continue
        found.setdefault(_KEYWORD_ALIASES.get(name, name), str(value))
    return found


def is_databricks(
    settings: Settings,
    args: Args,
    kwargs: Kwargs,
    parsed: Optional[Tuple[OdbcAttribute, ...]] = None,
) -> bool:
    """Whether this ``pyodbc.connect`` call targets Databricks (module docstring rules)."""
    attrs = effective_attributes(args, kwargs, parsed)
    odbc = rules(settings)
    if odbc.driver_matches(attrs.get("driver")):
        return True
    host = attrs.get("host") or attrs.get("server")
    if host and rules_for(settings).match_url(host.strip()):
        return True
    dsn = attrs.get("dsn")
    if dsn and "driver" not in attrs:
        return odbc.dsn_matches(dsn)
    return False


def _tag_connect(tag: Tag, instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Args, Kwargs]:
    if args and not isinstance(args[0], str):
        return args, kwargs
    text: str = args[0] if args else ""
    parsed = odbc_attributes(text)
    if not is_databricks(tag.settings, args, kwargs, parsed):
        return args, kwargs
    entries = [a for a in parsed if a.key.lower() == "useragententry"]
    keyword = next((k for k in kwargs if k.lower() == "useragententry"), None)
    new_kwargs = kwargs
    sent: Optional[str] = None
    if keyword is not None:
        value = kwargs[keyword]
        existing = value.strip() if isinstance(value, str) else None
        sent = merge_tokens(existing or None, tag.value, tag.mode)
        if sent != existing:
            new_kwargs = {**kwargs, keyword: odbc_quote(sent)}
    if entries or (keyword is None and args):
        text = merge_odbc_attribute(text, USER_AGENT_ENTRY, tag.value, tag.mode)
        first = entries[0].value.strip() if entries else ""
        sent = merge_tokens(first or None, tag.value, tag.mode)
    elif keyword is None:  # keywords only: add ours the same way
        new_kwargs = {**kwargs, USER_AGENT_ENTRY: tag.value}
        sent = tag.value
    tag.note(sent)
    new_args = (text, *args[1:]) if args else args
    return new_args, new_kwargs


def _span_wanted(settings: Settings, instance: Any, args: Args, kwargs: Kwargs) -> bool:
    return is_databricks(settings, args, kwargs)


def _target(instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Optional[str], Any]:
    attrs = effective_attributes(args, kwargs)
    host = attrs.get("host") or attrs.get("server")
    port = attrs.get("port")
    if host and ":" in host and port is None and host.count(":") == 1:
        host, port = host.split(":", 1)
    return (host.strip() if host else None), port


INTEGRATION = Integration(
    name="pyodbc",
    supported=">=4.0.30,<6",
    system="databricks",
    patches=(Patch("pyodbc", "connect", before=_tag_connect, span=_span_wanted, target=_target),),
)
