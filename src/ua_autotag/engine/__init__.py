"""The engine: register settings, arm import hooks, apply integrations when clients load.

``instrument()`` lands here: the settings join :mod:`.attribution` (the default or a
product) and every integration they enable gets a hook on its trigger module through
:mod:`.finder`. Nothing heavy happens until a trigger module is imported: only then is
:mod:`.patcher` (wrapt, version checks, the integration module) loaded. So a process
that never imports a client pays a few milliseconds for ``import ua_autotag``, however
it is configured.
"""

from __future__ import annotations

import sys
from _thread import RLock

from ..catalog import CATALOG, SDK_MODULES
from ..settings import Settings
from . import attribution, finder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from ..spec import IntegrationStatus

__all__ = ["ProductInfo", "Status", "carry", "instrument", "status", "uninstrument"]

#: guards applying and removing patches (re-entrant: hooks may fire while we hold it)
_LOCK = RLock()
_ARMED: set[str] = set()
#: in :data:`_ARMED` once the OpenTelemetry SDK modules are watched (no integration name)
_SDK = "(opentelemetry sdk)"


def _patcher() -> Any:
    """The patcher module if it has been loaded (None: nothing was ever patched)."""
    return sys.modules.get(f"{__name__}.patcher")


def _wanted() -> set[str]:
    st = attribution.state()
    wanted: set[str] = set()
    if st is not None:
        for settings in st.every():
            wanted |= settings.active
    return wanted


def _hook(name: str) -> Callable[[Any], None]:
    def on_import(module: Any) -> None:  # an exception here would fail the user's import
        try:
            with _LOCK:
                if name in CATALOG and name in _wanted():
                    from . import patcher

                    patcher.apply(name)
        except Exception:  # pragma: no cover - apply() never raises
            pass

    return on_import


def _deferred_hook(name: str, module_name: str) -> Callable[[Any], None]:
    def on_import(module: Any) -> None:
        try:
            with _LOCK:
                patcher = _patcher()
                if patcher is not None:
                    patcher.apply_deferred(name, module_name)
        except Exception:  # pragma: no cover - apply_deferred() never raises
            pass

    return on_import


def _sdk_hook(module: Any) -> None:
    """An OpenTelemetry SDK module was imported: span-only layers may be wanted now."""
    try:
        with _LOCK:
            patcher = _patcher()
            if patcher is not None:
                patcher.sync_spans()
    except Exception:  # pragma: no cover - sync_spans() never raises
        pass


def instrument(settings: Settings) -> Settings:
    """Make ``settings`` the default or a product; arm hooks for what it enables.

    Raises :class:`~ua_autotag.value.ConfigurationError` (nothing changed) for a
    package claimed by another product.
    """
    return _join(settings, attribution.register)


def carry(settings: Settings) -> None:
    """On a Spark executor: ``settings`` came with a function handed over on the driver
    (:mod:`ua_autotag.executor`); arm what they enable, registering no default or product."""
    _join(settings, attribution.accept)


def _join(settings: Settings, join: Callable[[Settings], Any]) -> Settings:
    to_arm: List[str] = []
    with _LOCK:
        fresh = attribution.state() is None
        join(settings)
        patcher = _patcher()
        if fresh and patcher is not None:
            patcher.forget_failures()
        wanted = _wanted()
        for name in CATALOG:
            if name not in wanted:
                if patcher is not None:
                    patcher.remove(name)
            elif name not in _ARMED:
                _ARMED.add(name)
                to_arm.append(name)
        if patcher is not None:
            patcher.sync_spans()  # spans may have been switched on or off
        watch_sdk = settings.spans and _SDK not in _ARMED
        if watch_sdk:
            _ARMED.add(_SDK)
    # outside the lock: watch() may wait for another thread's import of the trigger
    if watch_sdk:
        for sdk in SDK_MODULES:
            finder.watch(sdk, _sdk_hook)
    for name in to_arm:
        entry = CATALOG[name]
        for extra in entry.watch:
            finder.watch(extra, _deferred_hook(name, extra))
        finder.watch(entry.trigger, _hook(name))
    return settings


def uninstrument(packages: Optional[Tuple[str, ...]] = None) -> None:
    """Remove one product (``packages``) or everything, restoring originals by identity."""
    with _LOCK:
        attribution.unregister(packages)
        patcher = _patcher()
        if attribution.state() is None:
            if patcher is not None:
                patcher.remove_all()
            finder.unwatch_all()
            _ARMED.clear()
            return
        wanted = _wanted()
        if patcher is not None:
            for name in CATALOG:
                if name not in wanted:
                    patcher.remove(name)
            patcher.sync_spans()


class ProductInfo:
    """A registered value as ``status()`` and ``doctor`` show it.

    ``options`` holds each behaviour option with where it came from (an argument of
    ``instrument()``, ``env UA_AUTOTAG_...`` or ``default``): the environment is the
    customer's, and it does reach a product through some of them (docs/attribution.md).
    """

    __slots__ = ("mode", "options", "origin", "packages", "user_agent")

    #: the behaviour options shown, in this order
    SHOWN = ("mode", "spans", "strict", "disabled", "rest_hosts")

    def __init__(self, settings: Settings) -> None:
        self.user_agent = str(settings.user_agent)
        self.packages = settings.packages
        self.origin = settings.origin
        self.mode = settings.mode
        values = {
            "mode": settings.mode,
            "spans": settings.spans,
            "strict": settings.strict,
            "disabled": sorted(settings.disabled),
            "rest_hosts": list(settings.rest_hosts),
        }
        self.options: Dict[str, Tuple[Any, str]] = {
            name: (values[name], settings.sources.get(name, "default")) for name in self.SHOWN
        }

    def __repr__(self) -> str:
        where = f", packages={list(self.packages)}" if self.packages else " (process default)"
        return f"ProductInfo({self.user_agent!r}{where}, set at {self.origin or '?'})"

    def as_dict(self) -> Dict[str, Any]:
        return {
            "user_agent": self.user_agent,
            "packages": list(self.packages),
            "origin": self.origin,
            "mode": self.mode,
            "options": {k: {"value": v, "source": src} for k, (v, src) in self.options.items()},
        }


if TYPE_CHECKING:
    _StatusBase = Dict[str, IntegrationStatus]
else:
    _StatusBase = dict


class Status(_StatusBase):
    """Per integration, its :class:`~ua_autotag.spec.IntegrationStatus`; plus who tags.

    ``default`` is the process default (None without one), ``products`` the library
    products registered with ``packages=``.
    """

    default: Optional[ProductInfo]
    products: List[ProductInfo]


def status() -> Status:
    """Per integration: patched, partial, waiting, disabled, unsupported or failed."""
    from ..spec import IntegrationStatus
    from . import patcher

    with _LOCK:
        st = attribution.state()
        rows = Status()
        rows.default = ProductInfo(st.default) if st is not None and st.default else None
        rows.products = [
            ProductInfo(p.settings) for p in attribution.products() if p.settings is not None
        ]
        every = st.every() if st is not None else ()
        wanted = _wanted()
        for name, entry in CATALOG.items():
            row = patcher.status_of(name)
            if row is not None:
                rows[name] = row
                continue
            try:
                spec: Any = patcher.load_spec(name)
            except Exception:
                spec = None
            supported = spec.supported if spec is not None else None
            version = patcher.installed_version(entry.distributions)
            if not every:
                reason = "ua_autotag is not instrumented"
                rows[name] = IntegrationStatus(name, "disabled", version, supported, reason)
            elif name not in wanted:
                sources = sorted({s.sources.get("disabled", "default") for s in every})
                reason = f"disabled ({', '.join(sources)})"
                rows[name] = IntegrationStatus(name, "disabled", version, supported, reason)
            elif version is None and entry.trigger not in sys.modules:
                reason = f"{entry.trigger} is not installed"
                rows[name] = IntegrationStatus(name, "waiting", None, supported, reason)
            else:
                reason = f"{entry.trigger} not imported yet"
                rows[name] = IntegrationStatus(name, "waiting", version, supported, reason)
        return rows
