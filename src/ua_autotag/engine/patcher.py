"""Apply, refresh and remove integrations: one wrapt wrapper per patch, restore by identity.

Loaded only when a client's trigger module is imported (it imports wrapt, logging and
``importlib.metadata``). Each :class:`~ua_autotag.spec.Patch` becomes one
``FunctionWrapper`` of uniform behaviour: pass-through when nothing applies here,
tag before / after the call with the settings :func:`attribution.current` picks, a
connect span around it, and never an exception of its own in the user's call (except
a configuration error under ``strict``).

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
from ..merge import CARRIERS
from ..settings import Settings
from ..spec import Integration, IntegrationStatus, Patch, Tag
from ..value import ConfigurationError, InvalidUserAgent
from . import attribution
from .attribution import pin_of

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


class _Live:
    """An applied integration: its wrapt handles, switch, gaps and one-time warnings."""

    __slots__ = (
        "degraded",
        "handles",
        "missing",
        "on",
        "span_layers",
        "spans_on",
        "spec",
        "undo",
        "version",
        "warned",
    )

    def __init__(self, spec: Integration, version: Optional[str]) -> None:
        self.spec = spec
        self.version = version
        self.on = True
        #: the ``spans_only`` patches; wrapped while ``spans_on``
        self.span_layers: List[Patch] = []
        self.spans_on = False
        #: a tagging patch is missing: ``spans_only`` and ``fallback`` patches stand in
        self.degraded = False
        self.handles: List[Tuple[Patch, Any]] = []
        self.missing: List[str] = []
        self.undo: Optional[Callable[[], None]] = None
        self.warned = False

    def warn_once(self, patch: Patch, exc: BaseException) -> None:
        if not self.warned:
            self.warned = True
            logger.warning(
                "ua_autotag: %s could not tag a call to %s (%s: %s); the call went "
                "ahead untagged. Further failures are logged at DEBUG.",
                self.spec.name,
                patch.name,
                type(exc).__name__,
                telemetry.scrub(str(exc)),
            )
        else:
            logger.debug(
                "ua_autotag: %s tagging failed again: %s", self.spec.name, type(exc).__name__
            )


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


# --------------------------------------------------------------------------- wrappers


class _Tagger:
    """What one tagging patch does around a call; the wrappers below only sequence it.

    Everything that can be computed once per patch is (carrier, limit, flags), and the
    :class:`Tag` once per (settings, carrier). A call with no span to open and no
    product registered skips the context bookkeeping (nothing inner could resolve
    differently). Nothing here raises into the application's call except a
    configuration error under ``strict``.
    """

    __slots__ = (
        "after",
        "before",
        "carrier",
        "key",
        "limit",
        "live",
        "name",
        "patch",
        "pin_use",
        "resolver",
        "system",
        "tagging",
        "target",
        "want_span",
    )

    def __init__(self, live: _Live, patch: Patch) -> None:
        spec = live.spec
        self.live, self.patch = live, patch
        self.name, self.system, self.carrier = spec.name, spec.system, spec.carrier
        # our value is ASCII: characters are bytes
        self.limit = CARRIERS[spec.carrier].max_bytes if spec.carrier else None
        self.key = ("tag", spec.carrier)
        self.before, self.after, self.target = patch.before, patch.after, patch.target
        self.tagging, self.want_span, self.resolver = patch.tags, patch.span, patch.settings
        self.pin_use = patch.pin == "use"

    def settings_for(self, instance: Any) -> Optional[Settings]:
        """The settings that tag this call, or None to pass it through untouched."""
        if not self.live.on:
            return None
        resolver = self.resolver
        settings = attribution.current() if resolver is None else resolver(instance)
        if settings is None or self.name not in settings.active:
            return None
        if not self.tagging and self.target is None and not (self.want_span and settings.spans):
            return None  # a span-only layer with spans off
        return settings

    def plain(self, settings: Settings) -> bool:
        """Whether this call needs neither a span nor a decision for inner layers.

        The decision only matters with products registered (without them every layer
        of one call resolves to the same scope or default), and not for a ``leaf``
        patch: nothing patched runs inside it.
        """
        if self.want_span and settings.spans and telemetry.may_record():
            return False
        if not self.tagging or self.patch.leaf:
            return True
        return not attribution.products_registered()

    def start(
        self, settings: Settings, instance: Any, args: Args, kwargs: Kwargs
    ) -> Tuple[Optional[telemetry.ConnectSpan], Any, Optional[Tag], Args, Kwargs]:
        """Open the span, decide the product for inner layers, tag the arguments."""
        handle = self.open_span(settings, instance, args, kwargs)
        token = None
        if self.tagging:
            product = pin_of(instance) if self.pin_use and instance is not None else None
            token = attribution.decide(settings, product)
        try:
            tag, args, kwargs = self.prepare(settings, instance, args, kwargs)
        except BaseException as exc:  # strict: a configuration error for the caller
            self.end(handle, token, exc)
            raise
        if handle is not None:
            handle.begin()  # target and value known: every attribute goes in at start
        return handle, token, tag, args, kwargs

    @staticmethod
    def end(
        handle: Optional[telemetry.ConnectSpan], token: Any, exc: Optional[BaseException]
    ) -> None:
        if token is not None:
            attribution.undecide(token)
        if handle is not None:
            handle.finish(exc)

    def open_span(
        self, settings: Settings, instance: Any, args: Args, kwargs: Kwargs
    ) -> Optional[telemetry.ConnectSpan]:
        want_span = self.want_span
        if not (want_span and settings.spans):
            return None
        try:
            if callable(want_span) and not want_span(settings, instance, args, kwargs):
                return None
            return telemetry.start(self.name, self.system, settings, self.live.version)
        except Exception as exc:  # a broken OpenTelemetry set-up must not break the app
            logger.debug("ua_autotag: span start failed: %s", type(exc).__name__)
            return None

    def tag_for(self, settings: Settings) -> Tag:
        """The :class:`Tag` of ``settings`` for this carrier (built once, then cached)."""
        tag: Optional[Tag] = settings.cache.get(self.key)
        if tag is None:
            ua = settings.user_agent
            value = ua.text
            limit, carrier = self.limit, self.carrier
            if limit is not None and len(value) > limit and carrier is not None:
                value = ua.render(carrier)  # raises, naming the carrier and its limit
            tag = settings.cache[self.key] = Tag(ua, value, settings)
        return tag

    def prepare(
        self, settings: Settings, instance: Any, args: Args, kwargs: Kwargs
    ) -> Tuple[Optional[Tag], Args, Kwargs]:
        tag = None
        if self.tagging:
            try:
                tag = self.tag_for(settings)
                if self.before is not None:
                    args, kwargs = self.before(tag, instance, args, kwargs)
            except Exception as exc:
                self.failed(settings, exc)
                tag = None
        if self.target is not None and telemetry.current() is not None:
            self.note_target(instance, args, kwargs)
        return tag, args, kwargs

    def note_target(self, instance: Any, args: Args, kwargs: Kwargs) -> None:
        """Report (address, port) to the connect span in progress (an outer layer's)."""
        try:
            address, port = self.target(instance, args, kwargs)  # type: ignore[misc]
            telemetry.note(None, address, port)
        except Exception as exc:
            logger.debug(
                "ua_autotag: %s could not read the target: %s", self.name, type(exc).__name__
            )

    def finish(
        self, tag: Optional[Tag], instance: Any, args: Args, kwargs: Kwargs, result: Any
    ) -> Any:
        if self.after is None or tag is None:
            return result
        try:
            return self.after(tag, instance, args, kwargs, result)
        except Exception as exc:
            self.failed(tag.settings, exc)
        return result

    def failed(self, settings: Settings, exc: Exception) -> None:
        """Our tagging failed: raise only a configuration error under strict, else warn once."""
        if settings.strict and isinstance(exc, (InvalidUserAgent, ConfigurationError)):
            raise exc
        self.live.warn_once(self.patch, exc)


def _tag_wrapper(live: _Live, patch: Patch, is_async: bool) -> Callable[..., Any]:
    """The wrapt wrapper of a tagging (or span) patch, sync or async."""
    tagger = _Tagger(live, patch)
    settings_for, start, finish, end = tagger.settings_for, tagger.start, tagger.finish, tagger.end
    plain, prepare = tagger.plain, tagger.prepare

    if is_async:

        async def run_async(
            wrapped: Any, instance: Any, args: Args, kwargs: Kwargs, settings: Settings
        ) -> Any:
            handle, token, tag, args, kwargs = start(settings, instance, args, kwargs)
            try:
                result = finish(tag, instance, args, kwargs, await wrapped(*args, **kwargs))
            except BaseException as exc:
                end(handle, token, exc)
                raise
            end(handle, token, None)
            return result

        def async_wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            # attribution is decided now, in the caller's context and stack
            settings = settings_for(instance)
            if settings is None:
                return wrapped(*args, **kwargs)
            if patch.after is None and plain(settings):
                # nothing to do after the await: tag now, hand back the client's own
                # coroutine (no coroutine of ours around it)
                _tag, args, kwargs = prepare(settings, instance, args, kwargs)
                return wrapped(*args, **kwargs)
            return run_async(wrapped, instance, args, kwargs, settings)

        return async_wrapper

    # the common call (a tagging layer, no span) runs inline: this is the per-connect /
    # per-request hot path, and each method call here costs ~0.1 us
    name, resolver, current = tagger.name, tagger.resolver, attribution.current
    before, after, key, failed = tagger.before, tagger.after, tagger.key, tagger.failed
    tag_for, want_span, pin_use = tagger.tag_for, tagger.want_span, tagger.pin_use
    decide, undecide, leaf = attribution.decide, attribution.undecide, patch.leaf
    products_registered = attribution.products_registered
    target, note_target, span_now = tagger.target, tagger.note_target, telemetry.current
    may_record = telemetry.may_record
    inline = tagger.tagging

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        if inline and live.on:
            settings = current() if resolver is None else resolver(instance)
            if settings is None or name not in settings.active:
                return wrapped(*args, **kwargs)
            # spans on but no SDK configured: nothing would record, so the same path
            if not (want_span and settings.spans and may_record()):
                token = None
                if not leaf and products_registered():
                    # products registered: inner layers must resolve as this one did
                    product = pin_of(instance) if pin_use and instance is not None else None
                    token = decide(settings, product)
                try:
                    tag = settings.cache.get(key) or tag_for(settings)
                    if before is not None:
                        args, kwargs = before(tag, instance, args, kwargs)
                except Exception as exc:
                    try:
                        failed(settings, exc)  # raises only a configuration error (strict)
                    except BaseException:
                        if token is not None:
                            undecide(token)
                        raise
                    tag = None
                if target is not None and span_now() is not None:  # an outer layer's span
                    note_target(instance, args, kwargs)
                try:  # the decision stays in force through ``after`` (it may create objects)
                    result = wrapped(*args, **kwargs)
                    if after is not None and tag is not None:
                        try:
                            result = after(tag, instance, args, kwargs, result)
                        except Exception as exc:
                            failed(settings, exc)  # raises only a configuration error (strict)
                finally:
                    if token is not None:
                        undecide(token)
                return result
        else:
            settings = settings_for(instance)
            if settings is None:
                return wrapped(*args, **kwargs)
            if plain(settings):  # no span, nothing to tell inner layers: tag and call
                tag, args, kwargs = prepare(settings, instance, args, kwargs)
                return finish(tag, instance, args, kwargs, wrapped(*args, **kwargs))
        handle, token, tag, args, kwargs = start(settings, instance, args, kwargs)
        try:
            result = finish(tag, instance, args, kwargs, wrapped(*args, **kwargs))
        except BaseException as exc:
            end(handle, token, exc)
            raise
        end(handle, token, None)
        return result

    return wrapper


def _pin_wrapper(live: _Live, patch: Patch, is_async: bool) -> Callable[..., Any]:
    """``pin="create"``: remember the creating product; ``"use"``: connect as it."""
    creator, pin, pin_of, pinned = (
        attribution.creator,
        attribution.pin,
        attribution.pin_of,
        attribution.pinned,
    )

    pin_from = patch.pin_from

    if patch.pin == "create":

        def create(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            st = attribution.state()
            if not live.on or st is None or not st.by_package:
                return wrapped(*args, **kwargs)  # no product registered: nothing to pin
            try:
                source = pin_from(args, kwargs) if pin_from is not None else None
                product = (pin_of(source) if source is not None else None) or creator()
                if instance is not None:
                    pin(instance, product)  # None too: clears what a recycled object had
            except Exception:  # never our exception in the application's call
                product = None
            if product is None:
                return wrapped(*args, **kwargs)
            with pinned(product):
                return wrapped(*args, **kwargs)

        return create

    if is_async:

        async def use_async(wrapped: Any, args: Args, kwargs: Kwargs, product: Any) -> Any:
            with pinned(product):
                return await wrapped(*args, **kwargs)

        def use_wrapper_async(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            product = pin_of(instance) if live.on and instance is not None else None
            if product is None:
                return wrapped(*args, **kwargs)
            return use_async(wrapped, args, kwargs, product)

        return use_wrapper_async

    def use(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        product = pin_of(instance) if live.on and instance is not None else None
        if product is None:
            return wrapped(*args, **kwargs)
        with pinned(product):
            return wrapped(*args, **kwargs)

    return use


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
    make = _pin_wrapper if patch.pin and not patch.tags else _tag_wrapper
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
        _fail(
            name, "failed", f"{type(exc).__name__}: {telemetry.scrub(str(exc))}", version, supported
        )
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
        if loaded is not None and not _initializing(loaded):
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


def _initializing(module: Any) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


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
            logger.warning(
                "ua_autotag: %s: could not wrap %s (%s)",
                live.spec.name,
                patch.name,
                type(exc).__name__,
            )


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
            logger.debug("ua_autotag: re-wrap of %s failed: %s", patch.name, type(exc).__name__)


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
                logger.debug("ua_autotag: could not wrap %s: %s", patch.name, type(exc).__name__)


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
        logger.debug(
            "ua_autotag: left a disabled wrapper on %s (%s)", patch.name, type(exc).__name__
        )


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
            logger.debug("ua_autotag: undo of %s failed: %s", live.spec.name, type(exc).__name__)
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
