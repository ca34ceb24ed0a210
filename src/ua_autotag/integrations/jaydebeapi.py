"""jaydebeapi (JDBC from Python): ``UserAgentEntry`` for Databricks JDBC URLs only.

Patch point: ``jaydebeapi._jdbc_connect`` - the module global ``connect`` looks up at
call time (so ``from jaydebeapi import connect`` bound early is covered), with the
arguments already normalised: ``(jclassname, url, driver_args, jars, libs)`` where
``driver_args`` is a list (``[user, password]``) or a dict of connection properties.
It hands them to JPype's ``java.sql.DriverManager.getConnection(url, ...)``.

Databricks URLs: ``jdbc:databricks://...`` (Databricks JDBC driver, OSS and Simba
based) and ``jdbc:spark://...`` (Simba Spark JDBC driver), case-insensitive. Every
other URL is passed on untouched.

Where the value goes: a caller's ``UserAgentEntry`` in the URL's ``;key=value``
parameters or in the properties dict (any case) is merged in place per mode; without
one, ``;UserAgentEntry=<value>`` is appended to the URL (the properties may be a
``[user, password]`` list, the URL always exists). JDBC URL values have no ``{...}``
quoting: a caller's value is kept as written.

Known driver behaviour (databricks-jdbc OSS source, ``UserAgentManager``): the driver
registers *one* ``name/version`` pair from ``UserAgentEntry`` (split at the first
``/``, the rest sanitised), so in ``append`` mode a caller's own entry plus ours reach
the server as one garbled pair; ``replace`` is the mode that gives the partner token
cleanly when the application sets its own entry.

One span per connection to a Databricks URL (``db.system.name=databricks``).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

from .. import telemetry
from ..merge.odbc import USER_AGENT_ENTRY, merge_odbc_attribute, odbc_attributes
from ..merge.tokens import merge_tokens
from ..spec import Integration, Patch, Tag, argument, with_argument

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]

URL_PREFIXES = ("jdbc:databricks:", "jdbc:spark:")
_URL_INDEX = 1
_PROPS_INDEX = 2


def is_databricks_url(url: Any) -> bool:
    return isinstance(url, str) and url[:17].lower().startswith(URL_PREFIXES)


def merge_url(url: str, ours: str, mode: str) -> str:
    """``url`` with ``UserAgentEntry`` merged into its ``;key=value`` parameters."""
    return _url_plan(url, ours, mode)[0]


def _url_entry(url: str) -> Optional[str]:
    _, _, params = url.partition(";")
    for attr in odbc_attributes(params, braces=False):
        if attr.key.lower() == "useragententry":
            return attr.value
    return None


@functools.lru_cache(maxsize=256)  # a few URLs per process; URLs may hold passwords: never logged
def _url_plan(url: str, ours: str, mode: str) -> Tuple[str, Optional[str], Optional[str]]:
    """(merged URL, the caller's entry in ``url``, the entry in the merged URL)."""
    base, semi, params = url.partition(";")
    if not semi:
        merged = f"{url};{USER_AGENT_ENTRY}={ours}"
    else:
        merged = (
            f"{base};{merge_odbc_attribute(params, USER_AGENT_ENTRY, ours, mode, braces=False)}"
        )
    return merged, _url_entry(url), _url_entry(merged)


def _tag_connect(tag: Tag, instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Args, Kwargs]:
    url = argument(args, kwargs, _URL_INDEX, "url")
    if not is_databricks_url(url):
        return args, kwargs
    props = argument(args, kwargs, _PROPS_INDEX, "driver_args")
    key = None
    if isinstance(props, dict):
        key = next((k for k in props if isinstance(k, str) and k.lower() == "useragententry"), None)
    new_url, in_url, sent = _url_plan(url, tag.value, tag.mode)
    if key is not None:
        existing = props[key].strip() if isinstance(props[key], str) else None
        merged = merge_tokens(existing or None, tag.value, tag.mode)
        if merged != existing:
            args, kwargs = with_argument(
                args, kwargs, _PROPS_INDEX, "driver_args", {**props, key: merged}
            )
        if in_url is None:
            sent = merged
    if (in_url is not None or key is None) and new_url != url:
        args, kwargs = with_argument(args, kwargs, _URL_INDEX, "url", new_url)
    if sent is not None:
        telemetry.note(sent)
    return args, kwargs


def _span_wanted(settings: Any, instance: Any, args: Args, kwargs: Kwargs) -> bool:
    return is_databricks_url(argument(args, kwargs, _URL_INDEX, "url"))


def _target(instance: Any, args: Args, kwargs: Kwargs) -> Tuple[Optional[str], Any]:
    url = argument(args, kwargs, _URL_INDEX, "url")
    rest = url.split("://", 1)[1] if "://" in url else ""
    hostport = rest.split(";", 1)[0].split("/", 1)[0]
    host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    return (host or None), (port or None)


INTEGRATION = Integration(
    name="jaydebeapi",
    supported=">=1.1,<2",
    system="databricks",
    patches=(
        Patch(
            "jaydebeapi", "_jdbc_connect", before=_tag_connect, span=_span_wanted, target=_target
        ),
    ),
)
