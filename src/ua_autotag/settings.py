"""The options of ``instrument()``, declared once, and their resolution into :class:`Settings`.

:data:`OPTIONS` (declared in :mod:`ua_autotag.options`, re-exported here) is the one
list of options: ``ua_autotag.instrument``, the ``opentelemetry-instrument`` entry point
and the CLI take their names, environment variables and launcher flags from it.
:func:`resolve` merges arguments over the ``UA_AUTOTAG_*`` environment (arguments win)
into one immutable :class:`Settings`, computed once and read by every wrapper.

Imported by ``instrument()`` before any client is: it uses no ``logging``,
``dataclasses``, ``re`` or ``importlib.metadata`` at import time.
"""

from __future__ import annotations

import os

from .catalog import CATALOG, RUNTIMES
from .options import (  # declared there: light, read by every `import ua_autotag`
    CACHE_DIR_VAR,
    ENV,
    LOG_LEVEL_VAR,
    MODES,
    NODE_MODE_VAR,
    NODE_USER_AGENT_VAR,
    ODBC_DRIVERS_VAR,
    ODBC_DSNS_VAR,
    OPTIONS,
    REPORT_DIR_VAR,
    REPORT_VAR,
    VALUE_OPTIONS,
    VALUE_VARS,
    VAR,
    Option,
    has_user_agent,
    is_true,
)
from .options import FALSE as _FALSE
from .options import TRUE as _TRUE
from .value import ConfigurationError, InvalidUserAgent, UserAgent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple, Union

__all__ = [
    "CACHE_DIR_VAR",
    "ENV",
    "LOG_LEVEL_VAR",
    "MODES",
    "NODE_MODE_VAR",
    "NODE_USER_AGENT_VAR",
    "ODBC_DRIVERS_VAR",
    "ODBC_DSNS_VAR",
    "OPTIONS",
    "REPORT_DIR_VAR",
    "REPORT_VAR",
    "VALUE_OPTIONS",
    "VALUE_VARS",
    "VAR",
    "ConfigurationError",
    "Option",
    "Settings",
    "apply_log_level",
    "carriers_in_use",
    "check_carriers",
    "has_user_agent",
    "is_true",
    "resolve",
]


class Settings:
    """Everything one ``instrument()`` resolved: the value, its options and its packages.

    Immutable by convention. ``packages`` empty means the process default; otherwise the
    settings of a library product. ``active`` is the set of integrations it tags,
    precomputed because every wrapper asks. ``sources`` says where each option came from.
    ``cache`` holds what integrations derive from the settings (host rules...).
    """

    __slots__ = (
        "active",
        "cache",
        "disabled",
        "integrations",
        "mode",
        "origin",
        "packages",
        "rest_hosts",
        "sources",
        "spans",
        "strict",
        "user_agent",
    )

    def __init__(
        self,
        user_agent: UserAgent,
        mode: str = "append",
        spans: bool = True,
        strict: bool = False,
        integrations: Optional[FrozenSet[str]] = None,
        disabled: FrozenSet[str] = frozenset(),
        rest_hosts: Tuple[str, ...] = (),
        sources: Optional[Mapping[str, str]] = None,
        packages: Tuple[str, ...] = (),
        origin: Optional[str] = None,
    ) -> None:
        self.user_agent = user_agent
        self.mode = mode
        self.spans = spans
        self.strict = strict
        self.integrations = integrations
        self.disabled = disabled
        self.rest_hosts = rest_hosts
        self.sources: Mapping[str, str] = dict(sources or {})
        self.packages = packages
        self.origin = origin  # file:line of the instrument() call that set it
        self.active: FrozenSet[str] = frozenset(n for n in CATALOG if self.enabled(n))
        self.cache: Dict[Any, Any] = {}

    def enabled(self, name: str) -> bool:
        """Whether integration (or launcher runtime) ``name`` is to be tagged."""
        if "all" in self.disabled or name in self.disabled:
            return False
        return self.integrations is None or name in self.integrations or name in RUNTIMES

    def with_user_agent(self, ua: UserAgent) -> Settings:
        """The same options with another value (a ``user_agent(...)`` scope)."""
        return Settings(
            ua,
            self.mode,
            self.spans,
            self.strict,
            self.integrations,
            self.disabled,
            self.rest_hosts,
            {**self.sources, "user_agent": "user_agent() scope"},
            self.packages,
            self.origin,
        )

    @property
    def label(self) -> str:
        """How spans and metrics name this product: ``<isv>_<product>``."""
        return self.user_agent.name

    def __repr__(self) -> str:
        where = f", packages={list(self.packages)}" if self.packages else ""
        return f"Settings({str(self.user_agent)!r}, mode={self.mode!r}{where})"


def carriers_in_use(settings: Settings) -> FrozenSet[str]:
    """The carriers of the integrations ``settings`` enables."""
    return frozenset(c for c in (CATALOG[n].carrier for n in settings.active) if c is not None)


def check_carriers(ua: UserAgent, settings: Settings, label: str = "") -> None:
    """Raise :class:`InvalidUserAgent` if ``ua`` cannot travel in a carrier ``settings`` uses.

    The message names where the value came from (``label``) and which integrations
    impose the limit, since disabling them is the other way out.
    """
    for carrier in sorted(carriers_in_use(settings)):
        try:
            ua.render(carrier)
        except InvalidUserAgent as exc:
            users = sorted(n for n in settings.active if CATALOG[n].carrier == carrier)
            prefix = f"{label}: " if label else ""
            how = (  # a library product decides in its own code, not in its users' environment
                "disabled=[...] in its instrument() call"
                if settings.packages
                else f"disabled=[...], {VAR['disabled']} or --disable"
            )
            raise InvalidUserAgent(
                f"{prefix}{exc}; shorten the value, or disable the integrations that carry it "
                f"there ({', '.join(users)}) with {how}"
            ) from None


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
    environ: Optional[Mapping[str, str]] = None,
    labels: Optional[Mapping[str, str]] = None,
    origin: Optional[str] = None,
    **options: Any,
) -> Settings:
    """Merge the options of :data:`OPTIONS` over the environment into :class:`Settings`.

    ``options`` are ``instrument()``'s keywords (declared once, in :data:`OPTIONS`).
    Explicit options win. A product (``packages`` given) takes its value from the
    options only (``UA_AUTOTAG_USER_AGENT`` is the process default's), its behaviour
    from options, then the environment. ``labels`` names the options in messages and
    sources (the CLI passes its flags). Raises :class:`InvalidUserAgent` for a bad value
    and :class:`ConfigurationError` for anything else, naming the option or variable.
    """
    unknown = sorted(set(options) - {o.name for o in OPTIONS})
    if unknown:
        raise TypeError(f"resolve() got unknown options: {', '.join(unknown)}")
    given = _Given(options, environ, labels)
    packages = _packages(options.get("packages"))
    value = _Value(given, user_agent, packages)
    ua = value.resolve()
    # a product's mode is its own (how its value joins the caller's is the product's call);
    # the environment's is the process default's, like its value (docs/attribution.md)
    mode = given.choice("mode", None if packages else VAR["mode"], MODES)
    spans = given.flag("spans", VAR["spans"], True)
    strict = given.flag("strict", VAR["strict"], False)
    disabled, only = given.integrations()
    hosts = given.hosts()
    if packages:
        given.sources["packages"] = given.names.get("packages", "argument")
    settings = Settings(
        ua, mode, spans, strict, only, disabled, hosts, given.sources, packages, origin
    )
    check_carriers(ua, settings, value.where)
    return settings


class _Given:
    """The options one :func:`resolve` call got, over the environment, with their sources."""

    def __init__(
        self,
        options: Mapping[str, Any],
        environ: Optional[Mapping[str, str]],
        labels: Optional[Mapping[str, str]],
    ) -> None:
        self.options = options
        self.env: Mapping[str, str] = os.environ if environ is None else environ
        self.names: Dict[str, str] = dict(labels or {})
        self.sources: Dict[str, str] = {}

    def pick(self, key: str, var: Optional[str]) -> Tuple[Any, str]:
        """(raw value or None, how to name it in an error); records the source.

        ``var`` None: the option is not read from the environment here.
        """
        arg = self.options.get(key)
        if arg is not None:
            self.sources[key] = self.names.get(key, "argument")
            return arg, self.names.get(key, key)
        if var is not None and var in self.env:
            self.sources[key] = f"env {var}"
            return self.env[var], var
        self.sources[key] = "default"
        return None, var or key

    def choice(self, key: str, var: Optional[str], allowed: Tuple[str, ...]) -> str:
        raw, where = self.pick(key, var)
        value = allowed[0] if raw is None else str(raw).strip().lower()
        if value not in allowed:
            raise ConfigurationError(f"{where} must be one of {', '.join(allowed)}: {raw!r}")
        return value

    def flag(self, key: str, var: str, default: bool) -> bool:
        raw, where = self.pick(key, var)
        if raw is None:
            return default
        return raw if isinstance(raw, bool) else _parse_bool(where, str(raw))

    def integrations(self) -> Tuple[FrozenSet[str], Optional[FrozenSet[str]]]:
        """(disabled, only): the option's names plus the environment's, both checked."""
        disabled = frozenset(
            d.strip().lower() for d in self.options.get("disabled") or () if d.strip()
        )
        source = self.names.get("disabled", "argument") if disabled else "default"
        var = VAR["disabled"]
        if self.env.get(var, "").strip():
            disabled |= _parse_list(self.env[var])
            source = f"env {var}" if source == "default" else f"{source} + env {var}"
        self.sources["disabled"] = source
        _check_names(disabled - {"all"}, "disabled integrations", runtimes=True)
        raw = self.options.get("integrations")
        only = None if raw is None else frozenset(i.strip().lower() for i in raw)
        if only is not None:
            _check_names(only, "integrations")
            self.sources["integrations"] = self.names.get("integrations", "argument")
        return disabled, only

    def hosts(self) -> Tuple[str, ...]:
        raw, _ = self.pick("rest_hosts", VAR["rest_hosts"])
        if raw is not None and not isinstance(raw, str):
            raw = ",".join(raw)  # a list from the API, a comma list from elsewhere
        return tuple(sorted(_parse_list(raw))) if raw else ()


def _packages(packages: Optional[Iterable[str]]) -> Tuple[str, ...]:
    if packages is None:
        return ()
    if isinstance(packages, str):
        packages = [packages]
    found = []
    for name in packages:
        if (
            not isinstance(name, str)
            or not name.strip()
            or not all(part.isidentifier() for part in name.strip().split("."))
        ):
            raise ConfigurationError(
                f"packages must be module names such as 'acme_dateng' (pass __name__): {name!r}"
            )
        found.append(name.strip())
    if not found:
        raise ConfigurationError("packages must name at least one module (pass [__name__])")
    return tuple(dict.fromkeys(found))


def _check_names(names: Iterable[str], what: str, runtimes: bool = False) -> None:
    known = set(CATALOG) | (set(RUNTIMES) if runtimes else set())
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


def _labelled(where: str, build: Callable[[], UserAgent]) -> UserAgent:
    """``build()``, its :class:`InvalidUserAgent` prefixed with where the value came from."""
    try:
        return build()
    except InvalidUserAgent as exc:
        raise InvalidUserAgent(f"{where}: {exc}") from None


class _Value:
    """The value one :func:`resolve` call settles on: options first, then the environment."""

    def __init__(self, given: _Given, user_agent: Any, packages: Tuple[str, ...]) -> None:
        self.given, self.user_agent, self.packages = given, user_agent, packages
        get = given.options.get
        self.isv, self.product = get("isv"), get("product")
        self.version, self.version_from = get("version"), get("version_from")
        #: how errors about the value name where it came from (as the parse errors do)
        self.where = ""

    def label(self, key: str) -> str:
        return self.given.names.get(key, key)

    def resolve(self) -> UserAgent:
        label = self.label
        if self.user_agent is not None and (self.isv or self.product):
            raise ConfigurationError(
                f"give either {label('user_agent')} or {label('isv')}/{label('product')}, not both"
            )
        if self.version is not None and self.version_from is not None:
            raise ConfigurationError(
                f"give either {label('version')} or {label('version_from')}, not both"
            )
        return self.versioned(self.from_options() or self.from_env())

    def from_options(self) -> Optional[UserAgent]:
        sources, label = self.given.sources, self.label
        if self.user_agent is not None:
            sources["user_agent"] = self.given.names.get("user_agent", "argument")
            self.where = label("user_agent")
            return _labelled(self.where, lambda: UserAgent.coerce(self.user_agent))
        if self.isv is None and self.product is None:
            return None
        isv, product = self.isv, self.product
        if not (isv and product):
            raise InvalidUserAgent(
                f"{label('isv')} and {label('product')} are both required: "
                f"isv={isv!r}, product={product!r}"
            )
        sources["user_agent"] = self.given.names.get("isv", "argument")
        self.where = where = f"{label('isv')}/{label('product')}"
        return _labelled(where, lambda: UserAgent(isv, product, self.version))

    def from_env(self) -> UserAgent:
        env, sources = self.given.env, self.given.sources
        if self.packages:
            raise InvalidUserAgent(
                "a product registered with packages= needs its own value: pass user_agent=... "
                f"(or isv=/product=); {VAR['user_agent']} is the process default's"
            )
        full, isv, product, version_var = (
            VAR["user_agent"],
            VAR["isv"],
            VAR["product"],
            VAR["version"],
        )
        if env.get(full):
            sources["user_agent"] = f"env {full}"
            self.where = full
            text = env[full]
            return _labelled(full, lambda: UserAgent.parse(text))
        if env.get(isv) or env.get(product):
            sources["user_agent"] = f"env {isv} + {product}"
            parts = (env.get(isv, ""), env.get(product, ""))
            version = env.get(version_var) or None
            self.where = f"{isv}/PRODUCT/VERSION"
            return _labelled(self.where, lambda: UserAgent(*parts, version))
        label = self.label
        hint = (
            f"give {label('user_agent')} (or {label('isv')}/{label('product')})"
            if self.given.names
            else "pass user_agent=... (or isv=/product=)"
        )
        raise InvalidUserAgent(
            f"no User-Agent configured: {hint} or set {VAR['user_agent']} "
            f"(or {VAR['isv']} and {VAR['product']})"
        )

    def versioned(self, ua: UserAgent) -> UserAgent:
        """``ua`` with the version option (over a full value) or ``version_from`` applied."""
        sources, env = self.given.sources, self.given.env
        if self.version is not None and self.user_agent is not None:
            sources["version"] = self.given.names.get("version", "argument")
            version = self.version
            ua = _labelled(self.label("version"), lambda: UserAgent(ua.isv, ua.product, version))
        dist, where = self.version_from, self.label("version_from")
        from_env = self.user_agent is None and self.isv is None and not self.packages
        if dist is None and from_env and ua.version is None:
            where = VAR["version_from"]
            dist = env.get(where) or None
        if dist is None:
            return ua
        sources["version"] = f"{where}: distribution {dist}"
        found = _version_from(dist, where)
        return _labelled(f"{where} ({dist})", lambda: UserAgent(ua.isv, ua.product, found))


def apply_log_level(environ: Optional[Mapping[str, str]] = None, label: str = "") -> None:
    """Honour ``UA_AUTOTAG_LOG_LEVEL`` on the ``ua_autotag`` logger (``logging`` only if set)."""
    env = os.environ if environ is None else environ
    raw = env.get(LOG_LEVEL_VAR)
    if not raw:
        return
    import logging

    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ConfigurationError(
            f"{label or LOG_LEVEL_VAR} must be DEBUG, INFO, WARNING, ERROR or CRITICAL: {raw!r}"
        )
    logging.getLogger("ua_autotag").setLevel(level)
