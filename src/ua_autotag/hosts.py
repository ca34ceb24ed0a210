"""Which hosts count as Databricks: the rule REST and ODBC integrations share.

A host is a Databricks host when it is

* under one of the Databricks API DNS zones (:data:`DATABRICKS_ZONES`, the workspace
  and account-console zones the Databricks SDK and SQL connector themselves know:
  AWS, AWS GovCloud, Azure, Azure Government, Azure China, GCP; and the zone of
  Databricks Apps endpoints, ``*.databricksapps.com``);
* the host of ``DATABRICKS_HOST`` (the variable the Databricks SDK and CLI read); or
* listed by the user (``rest_hosts=`` / ``UA_AUTOTAG_REST_HOSTS``): ``name`` matches that
  host exactly, ``*.name`` or ``.name`` matches any host under ``name`` (not ``name``
  itself). Entries may be written as URLs (``https://h:8443/x`` means ``h``).

Matching is on the host name only (port, scheme and path are ignored), ASCII
case-insensitive, with a trailing dot and IPv6 brackets removed. The rest of
``*.databricks.com`` (www, docs, community, ...) is deliberately not matched.

Pure: no client imports. :func:`rules_for` computes the host sets once per
:class:`~ua_autotag.settings.Settings` object, and :meth:`HostRules.match` caches per
host name, so a request costs one dict lookup after the first to a host.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Iterable, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["DATABRICKS_ZONES", "HostRules", "host_of", "rules_for"]

#: DNS zones of Databricks workspaces and account consoles (leading dot: subdomains only).
#: Taken from databricks-sdk ``environments.ALL_ENVS`` and databricks-sql-connector
#: ``auth/endpoint.py`` (both list the same zones, plus Databricks' internal dev zone).
DATABRICKS_ZONES: Tuple[str, ...] = (
    ".cloud.databricks.com",  # AWS (also .staging.cloud.databricks.com)
    ".cloud.databricks.us",  # AWS GovCloud
    ".gcp.databricks.com",  # GCP
    ".azuredatabricks.net",  # Azure
    ".databricks.azure.us",  # Azure Government
    ".databricks.azure.cn",  # Azure China
    ".dev.databricks.com",  # Databricks' own development workspaces
    ".databricksapps.com",  # Databricks Apps (<app>-<workspace id>.<cloud>.databricksapps.com)
)

_CACHE_MAX = 1024


def host_of(value: str) -> Optional[str]:
    """The normalised host name of a URL, ``host[:port]`` or bare host; None if empty.

    ``"https://User@Adb-1.AzureDatabricks.net:443/x"`` -> ``"adb-1.azuredatabricks.net"``.
    """
    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    for sep in "/?#":
        text = text.split(sep, 1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):  # IPv6 literal, maybe with a port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    text = text.rstrip(".").lower()
    return text or None


class HostRules:
    """A compiled host rule: exact names and zone suffixes, with a per-host cache."""

    __slots__ = ("_cache", "exact", "zones")

    def __init__(self, exact: Iterable[str] = (), zones: Iterable[str] = DATABRICKS_ZONES) -> None:
        self.exact = frozenset(exact)
        self.zones = tuple(dict.fromkeys(zones))
        self._cache: Dict[str, bool] = {}

    @classmethod
    def build(cls, listed: Iterable[str] = (), databricks_host: Optional[str] = None) -> HostRules:
        """The rule for user-listed entries plus the ``DATABRICKS_HOST`` value."""
        exact = set()
        zones = list(DATABRICKS_ZONES)
        for entry in listed:
            entry = entry.strip()
            wildcard = entry.startswith("*.") or entry.startswith(".")
            host = host_of(entry.lstrip("*").lstrip(".")) if wildcard else host_of(entry)
            if not host:
                continue
            if wildcard:
                zones.append("." + host)
            else:
                exact.add(host)
        if databricks_host:
            host = host_of(databricks_host)
            if host:
                exact.add(host)
        return cls(exact, zones)

    def match(self, host: Optional[str]) -> bool:
        """Whether ``host`` (any case, no port) is a Databricks host."""
        if not host:
            return False
        hit = self._cache.get(host)
        if hit is None:
            name = host.lower().rstrip(".")
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]
            hit = name in self.exact or name.endswith(self.zones)
            self._remember(host, hit)
        return hit

    def _remember(self, key: str, hit: bool) -> None:
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = hit

    def match_url(self, url: str) -> bool:
        """Whether the host of ``url`` (absolute URL or ``host[:port]``) is Databricks."""
        parts = url.split("/", 3)
        netloc = parts[2] if len(parts) > 2 and parts[0].endswith(":") and not parts[1] else url
        netloc = netloc.rsplit("@", 1)[-1]  # never keep credentials in the cache
        hit = self._cache.get(netloc)
        if hit is None:
            hit = self.match(host_of(netloc))
            self._remember(netloc, hit)
        return hit


def rules_for(settings: Settings, environ: Optional[Mapping[str, str]] = None) -> HostRules:
    """The :class:`HostRules` of ``settings`` (its ``rest_hosts`` + ``DATABRICKS_HOST``).

    Computed once per settings object (``instrument()`` makes a new one, so a changed
    ``DATABRICKS_HOST`` is picked up by the next ``instrument()``, not per request).
    """
    if environ is None:
        rules: Optional[HostRules] = settings.cache.get("hosts")
        if rules is not None:
            return rules
    env = os.environ if environ is None else environ
    rules = HostRules.build(settings.rest_hosts, env.get("DATABRICKS_HOST"))
    if environ is None:
        settings.cache["hosts"] = rules
    return rules
