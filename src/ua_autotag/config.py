"""Arguments + ``UA_AUTOTAG_*`` environment -> one frozen :class:`Settings`.

The active settings and the scoped override live here, and wrappers read the value
in force through :func:`current_user_agent` only: one place, two lookups.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, Iterator, Mapping, Optional, Set, Tuple, Union

from .useragent import ConfigurationError, InvalidUserAgent, UserAgent

__all__ = [
    "ENV",
    "MODES",
    "ConfigurationError",
    "Settings",
    "active",
    "current_user_agent",
    "resolve",
    "scoped",
]

logger = logging.getLogger("ua_autotag")

MODES = ("append", "replace", "keep")

#: Every environment variable ua-autotag reads, with what it means (README table).
ENV = {
    "UA_AUTOTAG_USER_AGENT": "the full value, e.g. AcmePartner_DatEngProduct/3.5",
    "UA_AUTOTAG_ISV": "isv name (with UA_AUTOTAG_PRODUCT, instead of UA_AUTOTAG_USER_AGENT)",
    "UA_AUTOTAG_PRODUCT": "product name",
    "UA_AUTOTAG_VERSION": "product version (optional)",
    "UA_AUTOTAG_VERSION_FROM": "read the version from this installed distribution",
    "UA_AUTOTAG_DISABLED_INTEGRATIONS": "comma list of integrations to leave alone, or 'all'",
    "UA_AUTOTAG_MODE": "append (default) | replace | keep",
    "UA_AUTOTAG_SPANS": "true (default) | false: OpenTelemetry spans and metrics",
    "UA_AUTOTAG_STRICT": "true | false (default): raise instead of warn on bad configuration",
    "UA_AUTOTAG_LOG_LEVEL": "level of the 'ua_autotag' logger (DEBUG, INFO, WARNING...)",
    "UA_AUTOTAG_REST_HOSTS": "comma list of extra hosts whose REST calls are tagged",
    "UA_AUTOTAG_ODBC_DRIVERS": "comma list of extra ODBC driver-name fragments meaning Databricks",
    "UA_AUTOTAG_ODBC_DSNS": "comma list of ODBC DSN names meaning Databricks",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Everything ``instrument()`` resolved, computed once and read by every wrapper."""

    user_agent: UserAgent
    mode: str = "append"
    spans: bool = True
    strict: bool = False
    integrations: Optional[FrozenSet[str]] = None  # None: every known integration
    disabled: FrozenSet[str] = frozenset()
    rest_hosts: Tuple[str, ...] = ()
    #: where each value came from ("argument", "env UA_AUTOTAG_MODE", "default", ...)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def enabled(self, name: str) -> bool:
        """Whether integration ``name`` is to be patched."""
        if "all" in self.disabled or name in self.disabled:
            return False
        return self.integrations is None or name in self.integrations


_ACTIVE: Optional[Settings] = None
_SCOPED: contextvars.ContextVar[Optional[UserAgent]] = contextvars.ContextVar(
    "ua_autotag_scoped", default=None
)


def active() -> Optional[Settings]:
    """The settings of the current ``instrument()``, or None when not instrumented."""
    return _ACTIVE


def _set_active(settings: Optional[Settings]) -> None:
    global _ACTIVE
    _ACTIVE = settings


def current_user_agent(settings: Settings) -> UserAgent:
    """The value in force here: a ``user_agent(...)`` scope wins over ``settings``."""
    scoped_ua = _SCOPED.get()
    return settings.user_agent if scoped_ua is None else scoped_ua


@contextlib.contextmanager
def scoped(value: Union[str, UserAgent]) -> Iterator[UserAgent]:
    """Tag connections opened inside the block with ``value`` (contextvar-scoped)."""
    ua = UserAgent.coerce(value)
    settings = _ACTIVE
    if settings is not None:
        check_carriers(ua, carriers_in_use(settings))
    token = _SCOPED.set(ua)
    try:
        yield ua
    finally:
        _SCOPED.reset(token)


def check_carriers(ua: UserAgent, carriers: Iterable[str]) -> None:
    """Raise :class:`InvalidUserAgent` if ``ua`` cannot travel in one of ``carriers``."""
    for carrier in sorted(set(carriers)):
        ua.render(carrier)


def carriers_in_use(settings: Settings) -> Set[str]:
    """The carriers of the integrations ``settings`` enables."""
    from .integrations import CATALOG

    return {entry.carrier for name, entry in CATALOG.items() if settings.enabled(name)}


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false: {raw!r}")


def _parse_list(raw: str) -> FrozenSet[str]:
    return frozenset(item.strip().lower() for item in raw.split(",") if item.strip())


def _version_from(distribution: str, source: str) -> str:
    from importlib import metadata

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"{source}: distribution {distribution!r} is not installed, cannot read its version"
        ) from None
    return version


def resolve(
    user_agent: Union[str, UserAgent, None] = None,
    *,
    isv: Optional[str] = None,
    product: Optional[str] = None,
    version: Optional[str] = None,
    version_from: Optional[str] = None,
    integrations: Optional[Iterable[str]] = None,
    disabled: Iterable[str] = (),
    mode: Optional[str] = None,
    spans: Optional[bool] = None,
    strict: Optional[bool] = None,
    rest_hosts: Optional[Iterable[str]] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> Settings:
    """Merge arguments over the environment into :class:`Settings`.

    Explicit arguments win. Raises :class:`InvalidUserAgent` for a bad value and
    :class:`ConfigurationError` for anything else, naming the argument or variable.
    """
    env = os.environ if environ is None else environ
    sources: Dict[str, str] = {}

    def pick(arg: Any, var: str) -> Tuple[Any, Optional[str]]:
        if arg is not None:
            return arg, "argument"
        if var in env:
            return env[var], f"env {var}"
        return None, None

    ua = _resolve_user_agent(user_agent, isv, product, version, version_from, env, sources)

    raw_mode, src = pick(mode, "UA_AUTOTAG_MODE")
    mode_value = "append" if raw_mode is None else str(raw_mode).strip().lower()
    if mode_value not in MODES:
        where = "mode" if src == "argument" else "UA_AUTOTAG_MODE"
        raise ConfigurationError(f"{where} must be one of {', '.join(MODES)}: {raw_mode!r}")
    sources["mode"] = src or "default"

    flags = {}
    for key, arg, default in (("spans", spans, True), ("strict", strict, False)):
        var = f"UA_AUTOTAG_{key.upper()}"
        raw, src = pick(arg, var)
        if raw is None:
            flags[key] = default
        elif isinstance(raw, bool):
            flags[key] = raw
        else:
            flags[key] = _parse_bool(var if src != "argument" else key, str(raw))
        sources[key] = src or "default"

    disabled_set = frozenset(d.strip().lower() for d in disabled)
    sources["disabled"] = "argument" if disabled_set else "default"
    if "UA_AUTOTAG_DISABLED_INTEGRATIONS" in env:
        disabled_set |= _parse_list(env["UA_AUTOTAG_DISABLED_INTEGRATIONS"])
        sources["disabled"] = "env UA_AUTOTAG_DISABLED_INTEGRATIONS"
    only = None if integrations is None else frozenset(i.strip().lower() for i in integrations)
    _check_names(disabled_set - {"all"}, "disabled integrations")
    if only is not None:
        _check_names(only, "integrations")

    raw_hosts, src = pick(
        None if rest_hosts is None else ",".join(rest_hosts), "UA_AUTOTAG_REST_HOSTS"
    )
    hosts = tuple(sorted(_parse_list(raw_hosts))) if raw_hosts else ()
    sources["rest_hosts"] = src or "default"

    settings = Settings(
        user_agent=ua,
        mode=mode_value,
        spans=flags["spans"],
        strict=flags["strict"],
        integrations=only,
        disabled=disabled_set,
        rest_hosts=hosts,
        sources=sources,
    )
    check_carriers(ua, carriers_in_use(settings))
    return settings


def _check_names(names: Iterable[str], what: str) -> None:
    from .integrations import CATALOG

    unknown = sorted(set(names) - set(CATALOG))
    if unknown:
        raise ConfigurationError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(sorted(CATALOG))})"
        )


def _resolve_user_agent(
    user_agent: Union[str, UserAgent, None],
    isv: Optional[str],
    product: Optional[str],
    version: Optional[str],
    version_from: Optional[str],
    env: Mapping[str, str],
    sources: Dict[str, str],
) -> UserAgent:
    if user_agent is not None and (isv or product):
        raise ConfigurationError("give either user_agent or isv/product, not both")
    if version is not None and version_from is not None:
        raise ConfigurationError("give either version or version_from, not both")

    if user_agent is not None:
        ua = UserAgent.coerce(user_agent)
        sources["user_agent"] = "argument"
    elif isv is not None or product is not None:
        if not (isv and product):
            raise InvalidUserAgent(
                f"isv and product are both required: isv={isv!r}, product={product!r}"
            )
        ua = UserAgent(isv, product, version)
        sources["user_agent"] = "argument"
    elif env.get("UA_AUTOTAG_USER_AGENT"):
        try:
            ua = UserAgent.parse(env["UA_AUTOTAG_USER_AGENT"])
        except InvalidUserAgent as exc:
            raise InvalidUserAgent(f"UA_AUTOTAG_USER_AGENT: {exc}") from None
        sources["user_agent"] = "env UA_AUTOTAG_USER_AGENT"
    elif env.get("UA_AUTOTAG_ISV") or env.get("UA_AUTOTAG_PRODUCT"):
        try:
            ua = UserAgent(
                env.get("UA_AUTOTAG_ISV", ""),
                env.get("UA_AUTOTAG_PRODUCT", ""),
                env.get("UA_AUTOTAG_VERSION") or None,
            )
        except InvalidUserAgent as exc:
            raise InvalidUserAgent(f"UA_AUTOTAG_ISV/PRODUCT/VERSION: {exc}") from None
        sources["user_agent"] = "env UA_AUTOTAG_ISV + UA_AUTOTAG_PRODUCT"
    else:
        raise InvalidUserAgent(
            "no User-Agent configured: pass user_agent=... (or isv=/product=) or set "
            "UA_AUTOTAG_USER_AGENT (or UA_AUTOTAG_ISV and UA_AUTOTAG_PRODUCT)"
        )

    if version is not None and user_agent is not None:
        ua = UserAgent(ua.isv, ua.product, version)
        sources["version"] = "argument"
    dist, dist_source = version_from, "version_from"
    if dist is None and user_agent is None and isv is None and ua.version is None:
        dist, dist_source = env.get("UA_AUTOTAG_VERSION_FROM") or None, "UA_AUTOTAG_VERSION_FROM"
    if dist is not None:
        try:
            ua = UserAgent(ua.isv, ua.product, _version_from(dist, dist_source))
        except InvalidUserAgent as exc:
            raise InvalidUserAgent(f"{dist_source} ({dist}): {exc}") from None
        sources["version"] = f"{dist_source}: distribution {dist}"
    return ua


def apply_log_level(environ: Optional[Mapping[str, str]] = None) -> None:
    """Honour ``UA_AUTOTAG_LOG_LEVEL`` on the ``ua_autotag`` logger."""
    env = os.environ if environ is None else environ
    raw = env.get("UA_AUTOTAG_LOG_LEVEL")
    if not raw:
        return
    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ConfigurationError(
            f"UA_AUTOTAG_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL: {raw!r}"
        )
    logger.setLevel(level)
