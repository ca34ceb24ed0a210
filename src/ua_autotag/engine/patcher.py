"""Apply, refresh and remove integrations: one wrapt wrapper per patch, restore by identity.

Loaded only when a client's trigger module is imported (it imports wrapt, logging and
``importlib.metadata``). Each :class:`~ua_autotag.spec.Patch` becomes one
``FunctionWrapper`` around the per-call wrapper of :mod:`.wrapper`; this module only
puts it in place, refreshes it after a reload, and takes it out again.

Patching degrades per patch: a missing target is skipped with one warning and the
integration reports ``partial``; it is skipped whole only when an ``essential`` patch
is missing or nothing that tags is left.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import wrapt

from .. import telemetry
from ..catalog import CATALOG, module_for
from ..scrub import scrub
from ..spec import Integration, IntegrationStatus, Patch
from . import attribution
from .finder import initializing
from .wrapper import Applied, pin_wrapper, tag_wrapper

__all__ = [
    "apply",
    "installed_version",
    "load_spec",
    "remove_all",
    "spans_armed",
    "status_of",
    "sync_spans",
    "version_supported",
]

logger = logging.getLogger("ua_autotag")

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]

_PATH_ERRORS: Tuple[Type[BaseException], ...] = (
    ImportError,
    AttributeError,
    getattr(wrapt, "PathResolutionError", AttributeError),
)


class _Live(Applied):
    """An applied integration: what its wrappers share, plus its wrapt handles and gaps."""

    __slots__ = ("degraded", "handles", "missing", "span_layers", "spans_on", "undo")

    def __init__(self, spec: Integration, version: Optional[str]) -> None:
        super().__init__(spec, version)
        #: the ``spans_only`` patches; wrapped while ``spans_on``
        self.span_layers: List[Patch] = []
        self.spans_on = False
        #: a tagging patch is missing: ``spans_only`` and ``fallback`` patches stand in
        self.degraded = False
        self.handles: List[Tuple[Patch, Any]] = []
        self.missing: List[str] = []
        self.undo: Optional[Callable[[], None]] = None


_LIVE: Dict[str, _Live] = {}
_FAILED: Dict[str, IntegrationStatus] = {}


def load_spec(name: str) -> Integration:
    """Import ``ua_autotag.integrations.<name>`` (never the client) and return its spec."""
    module = importlib.import_module(module_for(name))
    spec: Integration = module.INTEGRATION
    return spec


def installed_version(distributions: Tuple[str, ...]) -> Optional[str]:
    """Version of the first installed distribution, or None."""
    from importlib import metadata

    for dist in distributions:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def version_supported(spec: Integration, version: Optional[str]) -> Optional[str]:
    """None when ``version`` is in range, else the reason it is not."""
    if version is None:
        return None  # vendored or source checkout: let the attribute checks decide
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        if Version(version) in SpecifierSet(spec.supported, prereleases=True):
            return None
    except InvalidVersion:
        return f"version {version!r} cannot be parsed"
    return f"{spec.distributions[0]} {version} is outside the supported range {spec.supported}"


# ----------------------------------------------------------------------------- wrapping


class _WrappedProperty(property):
    """A property whose getter runs through a wrapper (wrapt wraps functions only).

    The getter calls the wrapper with the original getter bound to the instance, so
    ``instance`` is the object, as for methods. ``__wrapped__`` is the original
    property: ``wrapt.unwrap_object`` (and the wrapt < 2 fallback) restore it.
    """


def _wrap_property(module: str, path: str, wrapper: Callable[..., Any]) -> _WrappedProperty:
    parent, attribute, found = wrapt.resolve_path(module, path)
    original: Any = found
    fget: Any = original.fget

    def getter(obj: Any) -> Any:
        return wrapper(fget.__get__(obj, type(obj)), obj, (), {})

    prop = _WrappedProperty(getter, original.fset, original.fdel, original.__doc__)
    prop.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(parent, attribute, prop)
    return prop


def _wrap(live: _Live, patch: Patch, original: Any) -> Any:
    func = getattr(original, "__func__", original)
    is_async = inspect.iscoroutinefunction(func)
    make = pin_wrapper if patch.pin and not patch.tags else tag_wrapper
    wrapper = make(live, patch, is_async)
    if isinstance(original, property):
        return _wrap_property(patch.module, patch.path, wrapper)
    return wrapt.wrap_function_wrapper(patch.module, patch.path, wrapper)


def _is_ours(current: Any, handle: Any) -> bool:
    """Whether ``handle`` is ``current`` or somewhere in its ``__wrapped__`` chain."""
    seen = 0
    while current is not None and seen < 32:
        if current is handle:
            return True
        current = getattr(current, "__wrapped__", None)
        seen += 1
    return False


# --------------------------------------------------------------------- apply / remove


def _fail(
    name: str, state: str, reason: str, version: Optional[str], supported: Optional[str]
) -> None:
    _FAILED[name] = IntegrationStatus(name, state, version, supported, reason)
    logger.warning("ua_autotag: integration %s not applied: %s", name, reason)


def _resolve(patch: Patch) -> Any:
    _, _, original = wrapt.resolve_path(patch.module, patch.path)
    return original


class _Skip(Exception):
    """The integration cannot be applied: (state, reason) for its status row."""


def apply(name: str) -> None:
    """Apply integration ``name`` (its trigger module is imported); refresh if live.

    Called under the engine's lock. Never raises.
    """
    if name in _LIVE:
        _refresh(_LIVE[name])
        return
    if name in _FAILED:
        return
    version: Optional[str] = None
    supported: Optional[str] = None
    try:
        spec = load_spec(name)
        supported = spec.supported
        version = installed_version(spec.distributions)
        reason = version_supported(spec, version)
        if reason is not None:
            raise _Skip("unsupported", reason)
        live = _apply_live(spec, version, *_resolve_all(spec))
    except _Skip as skip:
        _fail(name, skip.args[0], skip.args[1], version, supported)
        return
    except Exception as exc:
        _fail(name, "failed", f"{type(exc).__name__}: {scrub(str(exc))}", version, supported)
        return
    _LIVE[name] = live
    if live.missing:
        logger.warning(
            "ua_autotag: %s %s is partly patched: %s not found; the other paths are tagged",
            name,
            version or "",
            ", ".join(live.missing),
        )
    for module in {p.when for p in spec.patches if p.when is not None}:
        loaded = sys.modules.get(module)
        if loaded is not None and not initializing(loaded):
            _apply_deferred(live, module)  # imported before the client was
    logger.debug("ua_autotag: patched %s %s", name, version)


def _resolve_all(spec: Integration) -> Tuple[List[Tuple[Patch, Any]], List[Patch]]:
    """(found patches with their originals, missing ones); raises :class:`_Skip` when
    an essential one is missing or nothing that tags is left."""
    resolved: List[Tuple[Patch, Any]] = []
    missing: List[Patch] = []
    for patch in spec.patches:
        if patch.when is not None:
            continue  # applied when its own module is imported
        try:
            resolved.append((patch, _resolve(patch)))
        except _PATH_ERRORS:
            missing.append(patch)
    essential = [p for p in missing if p.essential]
    if essential:
        raise _Skip("failed", f"patch target {essential[0].name} not found (essential)")
    pins_only = spec.carrier is None
    if not pins_only and not any(p.tags for p, _ in resolved) and spec.setup is None:
        gone = ", ".join(p.name for p in missing) or "none declared"
        raise _Skip("failed", f"no patch that tags is left ({gone} not found)")
    return resolved, missing


def _apply_live(
    spec: Integration,
    version: Optional[str],
    resolved: List[Tuple[Patch, Any]],
    missing: List[Patch],
) -> _Live:
    """Wrap every resolved patch and run the set-up; all undone if any of it fails."""
    live = _Live(spec, version)
    live.missing = [p.name for p in missing if not p.optional]
    live.span_layers = [p for p, _ in resolved if p.spans_only]
    # a tagging patch is missing: the layers that back it up are wrapped for good
    live.degraded = any(p.tags and not (p.spans_only or p.fallback) for p in missing)
    live.spans_on = live.degraded or spans_armed()
    try:
        for patch, original in resolved:
            if patch.fallback and not live.degraded:
                continue
            if live.spans_on or not patch.spans_only:
                live.handles.append((patch, _wrap(live, patch, original)))
        if spec.setup is not None:
            live.undo = spec.setup()
    except Exception:
        _remove(live)
        raise
    return live


def apply_deferred(name: str, module: str) -> None:
    """``module`` (a catalog ``watch`` entry of ``name``) was imported: wrap what waits for it."""
    live = _LIVE.get(name)
    if live is not None and live.on:
        _apply_deferred(live, module)


def _apply_deferred(live: _Live, module: str) -> None:
    """Wrap the integration's patches that wait for ``module`` (or re-wrap after a reload)."""
    done = {(p.module, p.path): h for p, h in live.handles}
    for patch in live.spec.patches:
        if patch.when != module or (patch.spans_only and not live.spans_on):
            continue
        if patch.fallback and not live.degraded:
            continue
        try:
            original = _resolve(patch)
        except _PATH_ERRORS:
            if not patch.optional and patch.name not in live.missing:
                live.missing.append(patch.name)
                logger.warning(
                    "ua_autotag: %s: %s not found; left alone", live.spec.name, patch.name
                )
            continue
        handle = done.get((patch.module, patch.path))
        if handle is not None and _is_ours(original, handle):
            continue
        try:
            live.handles.append((patch, _wrap(live, patch, original)))
        except Exception as exc:
            _step_failed(f"{live.spec.name}: wrapping {patch.name}", exc, missed=True)


def _refresh(live: _Live) -> None:
    """After a module re-executed (``importlib.reload``): wrap again what it rebound."""
    if not live.on:
        return
    for index, (patch, handle) in enumerate(list(live.handles)):
        try:
            current = _resolve(patch)
        except _PATH_ERRORS:
            continue
        if _is_ours(current, handle):
            continue  # still wrapped: never twice
        try:
            live.handles[index] = (patch, _wrap(live, patch, current))
        except Exception as exc:
            _step_failed(f"re-wrapping {patch.name}", exc)


def spans_armed() -> bool:
    """Whether span-only layers are wanted now: some registered settings have spans on
    and a span could record (an OpenTelemetry SDK is loaded, a provider is installed, or
    one is configured through the environment)."""
    st = attribution.state()
    if st is None or not any(s.spans for s in st.every()):
        return False
    return telemetry.sdk_possible()


def sync_spans() -> None:
    """Wrap or unwrap the span-only layers after the answer of :func:`spans_armed`
    changed (an SDK was imported, spans were switched on or off). Under the lock."""
    armed = spans_armed()
    for live in _LIVE.values():
        if not live.on or live.degraded or live.spans_on == armed:
            continue
        live.spans_on = armed
        if not armed:
            for patch, handle in [h for h in live.handles if h[0].spans_only]:
                _unwrap(patch, handle)
            live.handles = [h for h in live.handles if not h[0].spans_only]
            continue
        for patch in live.span_layers:
            if patch.when is not None and patch.when not in sys.modules:
                continue  # wrapped when that module is imported
            try:
                live.handles.append((patch, _wrap(live, patch, _resolve(patch))))
            except Exception as exc:
                _step_failed(f"wrapping the span layer {patch.name}", exc)


def _step_failed(what: str, exc: Exception, missed: bool = False) -> None:
    """A lifecycle step failed: the one policy (nothing here ever raises). A step whose
    failure leaves calls untagged (``missed``) warns; a clean-up step logs at DEBUG."""
    log = logger.warning if missed else logger.debug
    log("ua_autotag: %s failed (%s); left as it was", what, type(exc).__name__)


def _unwrap(patch: Patch, handle: Any) -> None:
    """Put back the original under ``handle``, wherever it sits in the chain; never raises."""
    try:
        if hasattr(wrapt, "unwrap_object"):
            wrapt.unwrap_object(patch.module, patch.path, handle, missing_ok=True)
        else:  # wrapt < 2: only an outermost wrapper can be removed
            parent, attribute, current = wrapt.resolve_path(patch.module, patch.path)
            if current is handle:
                setattr(parent, attribute, getattr(handle, "__wrapped__"))  # noqa: B009
    except Exception as exc:
        _step_failed(f"unwrapping {patch.name} (left there, switched off)", exc)


def _remove(live: _Live) -> None:
    """Unwrap ``live``'s patches, restoring the original objects; never raises."""
    live.on = False  # anything left in a chain becomes a pass-through
    for patch, handle in reversed(live.handles):
        _unwrap(patch, handle)
    live.handles.clear()
    if live.undo is not None:
        try:
            live.undo()
        except Exception as exc:
            _step_failed(f"undoing the set-up of {live.spec.name}", exc)
        live.undo = None


def remove(name: str) -> None:
    """Remove integration ``name`` (disabled by a re-target); forget its failure."""
    live = _LIVE.pop(name, None)
    if live is not None:
        _remove(live)
    _FAILED.pop(name, None)


def remove_all() -> None:
    """Remove every integration and forget failures."""
    for live in _LIVE.values():
        _remove(live)
    _LIVE.clear()
    _FAILED.clear()


def forget_failures() -> None:
    """A fresh ``instrument()`` tries failed integrations again."""
    _FAILED.clear()


def status_of(name: str) -> Optional[IntegrationStatus]:
    """The row of an applied or failed integration; None when it is neither."""
    live = _LIVE.get(name)
    if live is not None:
        if live.missing:
            return IntegrationStatus(
                name,
                "partial",
                live.version,
                live.spec.supported,
                f"{', '.join(live.missing)} not found; the other paths are tagged",
                tuple(live.missing),
            )
        return IntegrationStatus(name, "patched", live.version, live.spec.supported)
    return _FAILED.get(name)


def trigger_imported(name: str) -> bool:
    return CATALOG[name].trigger in sys.modules
