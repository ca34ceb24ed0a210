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
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from .. import telemetry
from ..hosts import rules_for
from ..merge.odbc import OdbcAttribute, merge_call, odbc_attributes
from ..options import ODBC_DRIVERS_VAR, ODBC_DSNS_VAR
from ..settings import Settings
from ..spec import Integration, Patch, Tag

logger = logging.getLogger("ua_autotag")

#: Driver name / path fragments of the Databricks and Simba Spark ODBC drivers.
DRIVER_PATTERNS = ("databricks", "simba spark", "sparkodbc")

# keywords pyodbc.connect consumes itself (not appended to the connection string)
_SPECIAL = frozenset({"autocommit", "ansi", "timeout", "readonly", "attrs_before", "encoding"})
_KEYWORD_ALIASES = {"user": "uid", "password": "pwd", "host": "server"}

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]


class OdbcRules:
    """Driver patterns and DSN names in force (computed once per settings object)."""

    __slots__ = ("drivers", "dsn_drivers", "dsns")

    def __init__(self, environ: Mapping[str, str]) -> None:
        extra = [d.strip().lower() for d in environ.get(ODBC_DRIVERS_VAR, "").split(",")]
        self.drivers = DRIVER_PATTERNS + tuple(d for d in extra if d)
        self.dsns = frozenset(
            d.strip().lower() for d in environ.get(ODBC_DSNS_VAR, "").split(",") if d.strip()
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


_CACHE_MAX = 256
_SETTINGS_KEY = "pyodbc.plans"


class Plan(NamedTuple):
    """What one ``pyodbc.connect`` call becomes: computed once per distinct call."""

    databricks: bool  # False: the call is left exactly as it is
    text: Optional[str]  # the connection string to pass instead (None: unchanged)
    kwargs: Tuple[Tuple[str, Any], ...]  # keywords to set (empty: unchanged)
    sent: Optional[str]  # the UserAgentEntry the driver gets


_SKIP = Plan(False, None, (), None)


def plan(
    settings: Settings, text: str, positional: bool, kwargs: Kwargs, ours: str, mode: str
) -> Plan:
    """The :class:`Plan` for a call (``positional``: the string was passed positionally).

    Cached per settings object (the host and driver rules live there) by (connection
    string, keywords, value, mode), at most 256 calls, cleared when full; calls whose
    keywords are not hashable are planned every time. Connection strings carry
    passwords: the cache is never logged or exposed.
    """
    key: Any
    try:
        # keyword values with their types: 1, 1.0 and True are equal keys but not equal text
        keywords = tuple((k, type(v), v) for k, v in kwargs.items()) if kwargs else ()
        key = (text, positional, keywords, ours, mode)
        cache: Optional[Dict[Any, Plan]] = settings.cache.get(_SETTINGS_KEY)
        if cache is None:
            cache = settings.cache[_SETTINGS_KEY] = {}
        found = cache.get(key)
    except TypeError:  # an unhashable keyword value (attrs_before={...})
        return make_plan(settings, text, positional, kwargs, ours, mode)
    if found is None:
        found = make_plan(settings, text, positional, kwargs, ours, mode)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = found
    return found


def make_plan(
    settings: Settings, text: str, positional: bool, kwargs: Kwargs, ours: str, mode: str
) -> Plan:
    """:func:`plan`, uncached: the module docstring's rules for one call."""
    parsed = odbc_attributes(text)
    args: Args = (text,) if positional else ()
    if not is_databricks(settings, args, kwargs, parsed):
        return _SKIP
    new_text, new_kwargs, sent = merge_call(text, parsed, positional, kwargs, ours, mode)
    return Plan(True, new_text, new_kwargs, sent)


def _tag_connect(tag: Tag, instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Args, Kwargs]:
    if args and not isinstance(args[0], str):
        return args, kwargs
    found = plan(tag.settings, args[0] if args else "", bool(args), kwargs, tag.value, tag.mode)
    if not found.databricks:
        return args, kwargs
    if found.sent is not None:
        telemetry.note(found.sent)
    if found.kwargs:
        kwargs = {**kwargs, **dict(found.kwargs)}
    if found.text is not None and args:
        args = (found.text, *args[1:])
    return args, kwargs


def _span_wanted(settings: Settings, instance: Any, args: Args, kwargs: Kwargs) -> bool:
    if args and not isinstance(args[0], str):
        return is_databricks(settings, args, kwargs)
    text = args[0] if args else ""
    mode = settings.mode
    return plan(settings, text, bool(args), kwargs, settings.user_agent.text, mode).databricks


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
