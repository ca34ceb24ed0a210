"""Integration specs, wrapt post-import hooks, apply / remove / status.

The only module that knows about wrapt and version ranges. An integration module
declares an :class:`Integration` (what to wrap, how to tag, its supported range);
this module turns each :class:`Patch` into one wrapt ``FunctionWrapper`` whose
behaviour is uniform: pass-through when inactive, tag before / after the call,
a connect span around it, and never an exception of its own in the user's call.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple, Union

import wrapt

from . import config, telemetry
from .config import ConfigurationError, Settings
from .integrations import CATALOG, module_for
from .useragent import CARRIERS, InvalidUserAgent, UserAgent

__all__ = [
    "Integration",
    "IntegrationStatus",
    "Patch",
    "Tag",
    "argument",
    "instrument",
    "status",
    "with_argument",
]

logger = logging.getLogger("ua_autotag")

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]


class Tag:
    """What a tagging function gets for one call: the value and how to merge it."""

    __slots__ = ("mode", "settings", "ua", "value")

    def __init__(self, ua: UserAgent, value: str, settings: Settings) -> None:
        self.ua = ua
        self.value = value  # rendered for this integration's carrier
        self.mode = settings.mode
        self.settings = settings

    def note(
        self, sent: Optional[str] = None, address: Optional[str] = None, port: Any = None
    ) -> None:
        """Tell the connect span what was actually sent and to where."""
        telemetry.note(sent, address, port)


def argument(args: Args, kwargs: Kwargs, index: int, name: str) -> Any:
    """The call's argument at position ``index`` or keyword ``name`` (None if absent)."""
    return args[index] if len(args) > index else kwargs.get(name)


def with_argument(
    args: Args, kwargs: Kwargs, index: int, name: str, value: Any
) -> Tuple[Args, Kwargs]:
    """``(args, kwargs)`` with that argument replaced, where the caller passed it."""
    if len(args) > index:
        return (*args[:index], value, *args[index + 1 :]), kwargs
    return args, {**kwargs, name: value}


Before = Callable[[Tag, Any, Args, Kwargs], Tuple[Args, Kwargs]]
After = Callable[[Tag, Any, Args, Kwargs, Any], Any]
Target = Callable[[Any, Args, Kwargs], Tuple[Optional[str], Any]]
SpanPredicate = Callable[[Any, Args, Kwargs], bool]


class Patch(NamedTuple):
    """One wrapped attribute: ``module`` + dotted ``path`` (``"Class.method"``).

    ``before`` rewrites the call's arguments, ``after`` its result (awaited first for
    coroutine functions); ``span`` opens a connect span around the call, ``target``
    reads (address, port) from the arguments for it. ``optional`` patches may be
    absent in some versions without failing the integration. A ``path`` naming a
    property wraps its getter (``after`` rewrites the value it returns). ``span`` may
    also be a predicate ``(instance, args, kwargs) -> bool`` for clients that reach
    Databricks and other targets through one call (pyodbc, JDBC): only calls it
    accepts get a span (a failing predicate means no span).
    """

    module: str
    path: str
    before: Optional[Before] = None
    after: Optional[After] = None
    span: Union[bool, SpanPredicate] = False
    target: Optional[Target] = None
    optional: bool = False


class Integration(NamedTuple):
    """A client library: its distributions, supported range, system and patches."""

    name: str
    distributions: Tuple[str, ...]
    supported: str  # PEP 440 specifier set, e.g. ">=3.1,<4"
    system: str  # db.system.name (or a documented choice) for spans
    patches: Tuple[Patch, ...]
    #: extra set-up beyond wrapping (an event listener...); returns its undo
    setup: Optional[Callable[[], Callable[[], None]]] = None

    @property
    def carrier(self) -> str:
        return CATALOG[self.name].carrier


class IntegrationStatus(NamedTuple):
    """One row of :func:`status`: patched, waiting, disabled, unsupported or failed."""

    name: str
    state: str
    version: Optional[str] = None
    supported: Optional[str] = None
    reason: Optional[str] = None


class _Live:
    """An applied integration: its wrapt handles, switch and one-time warnings."""

    __slots__ = ("handles", "on", "spec", "undo", "version", "warned")

    def __init__(self, spec: Integration, version: Optional[str]) -> None:
        self.spec = spec
        self.version = version
        self.on = True
        self.handles: List[Tuple[Any, str, Any]] = []
        self.undo: Optional[Callable[[], None]] = None
        self.warned = False

    def warn_once(self, patch: Patch, exc: BaseException) -> None:
        if not self.warned:
            self.warned = True
            logger.warning(
                "ua_autotag: %s could not tag a call to %s.%s (%s: %s); the call went "
                "ahead untagged. Further failures are logged at DEBUG.",
                self.spec.name,
                patch.module,
                patch.path,
                type(exc).__name__,
                telemetry.scrub(str(exc)),
            )
        else:
            logger.debug(
                "ua_autotag: %s tagging failed again: %s", self.spec.name, type(exc).__name__
            )


_LOCK = threading.RLock()
_LIVE: Dict[str, _Live] = {}
_FAILED: Dict[str, IntegrationStatus] = {}
_PENDING: Set[str] = set()  # integrations whose post-import hook has not fired yet


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


def _make_wrapper(live: _Live, patch: Patch, is_async: bool) -> Callable[..., Any]:
    spec = live.spec
    name, system, version = spec.name, spec.system, live.version
    carrier = spec.carrier
    limit = CARRIERS[carrier].max_bytes  # our value is ASCII: characters are bytes
    before, after, target = patch.before, patch.after, patch.target
    tagging = before is not None or after is not None
    want_span = patch.span

    def prepare(
        settings: Settings, instance: Any, args: Args, kwargs: Kwargs
    ) -> Tuple[Optional[Tag], Args, Kwargs]:
        tag = None
        if tagging:
            try:
                ua = config.current_user_agent(settings)
                value = ua._text
                if limit is not None and len(value) > limit:
                    value = ua.render(carrier)  # raises, naming the carrier and its limit
                tag = Tag(ua, value, settings)
                if before is not None:
                    args, kwargs = before(tag, instance, args, kwargs)
            except (InvalidUserAgent, ConfigurationError) as exc:
                if settings.strict:
                    raise
                live.warn_once(patch, exc)
                tag = None
            except Exception as exc:
                live.warn_once(patch, exc)
                tag = None
        if target is not None and telemetry.current() is not None:
            try:
                address, port = target(instance, args, kwargs)
                telemetry.note(None, address, port)
            except Exception as exc:
                logger.debug(
                    "ua_autotag: %s could not read the target: %s", name, type(exc).__name__
                )
        return tag, args, kwargs

    def finish(tag: Optional[Tag], instance: Any, args: Args, kwargs: Kwargs, result: Any) -> Any:
        if after is None or tag is None:
            return result
        try:
            return after(tag, instance, args, kwargs, result)
        except (InvalidUserAgent, ConfigurationError) as exc:
            if tag.settings.strict:
                raise
            live.warn_once(patch, exc)
        except Exception as exc:
            live.warn_once(patch, exc)
        return result

    def open_span(
        settings: Settings, instance: Any, args: Args, kwargs: Kwargs
    ) -> Optional[telemetry.ConnectSpan]:
        if not (want_span and settings.spans):
            return None
        try:
            if callable(want_span) and not want_span(instance, args, kwargs):
                return None
            return telemetry.start(name, system, settings.mode, version)
        except Exception as exc:  # a broken OpenTelemetry set-up must not break the app
            logger.debug("ua_autotag: span start failed: %s", type(exc).__name__)
            return None

    if is_async:

        async def run_async(
            wrapped: Any, instance: Any, args: Args, kwargs: Kwargs, settings: Settings
        ) -> Any:
            handle = open_span(settings, instance, args, kwargs)
            try:
                tag, args, kwargs = prepare(settings, instance, args, kwargs)
                result = await wrapped(*args, **kwargs)
                result = finish(tag, instance, args, kwargs, result)
            except BaseException as exc:
                if handle is not None:
                    handle.finish(exc)
                raise
            if handle is not None:
                handle.finish(None)
            return result

        def async_wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            settings = config._ACTIVE
            if settings is None or not live.on:
                return wrapped(*args, **kwargs)
            return run_async(wrapped, instance, args, kwargs, settings)

        return async_wrapper

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        settings = config._ACTIVE
        if settings is None or not live.on:
            return wrapped(*args, **kwargs)
        handle = open_span(settings, instance, args, kwargs)
        try:
            tag, args, kwargs = prepare(settings, instance, args, kwargs)
            result = wrapped(*args, **kwargs)
            result = finish(tag, instance, args, kwargs, result)
        except BaseException as exc:
            if handle is not None:
                handle.finish(exc)
            raise
        if handle is not None:
            handle.finish(None)
        return result

    return wrapper


class _WrappedProperty(property):
    """A property whose getter runs through a registry wrapper.

    wrapt wraps functions, not properties; this swaps in a property whose getter
    calls the wrapper with the original getter bound to the instance (so
    ``instance`` is the object, as for methods). ``__wrapped__`` is the original
    property: ``wrapt.unwrap_object`` (and the wrapt < 2 fallback) restore it.
    """


def _wrap_property(module: str, path: str, wrapper: Callable[..., Any]) -> _WrappedProperty:
    parent, attribute, found = wrapt.resolve_path(module, path)
    original: Any = found  # a property (wrapt types it as a callable)
    fget: Any = original.fget

    def getter(obj: Any) -> Any:
        return wrapper(fget.__get__(obj, type(obj)), obj, (), {})

    prop = _WrappedProperty(getter, original.fset, original.fdel, original.__doc__)
    prop.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(parent, attribute, prop)
    return prop


# --------------------------------------------------------------------- apply / remove


def _fail(
    name: str, state: str, reason: str, version: Optional[str], supported: Optional[str]
) -> None:
    _FAILED[name] = IntegrationStatus(name, state, version, supported, reason)
    logger.warning("ua_autotag: integration %s not applied: %s", name, reason)


def _apply(name: str) -> None:
    """Apply integration ``name`` now (its trigger module is imported). Never raises."""
    settings = config._ACTIVE
    if settings is None or not settings.enabled(name) or name in _LIVE or name in _FAILED:
        return
    version: Optional[str] = None
    supported: Optional[str] = None
    try:
        spec = load_spec(name)
        supported = spec.supported
        version = installed_version(spec.distributions)
        reason = version_supported(spec, version)
        if reason is not None:
            _fail(name, "unsupported", reason, version, supported)
            return
        resolved = []
        for patch in spec.patches:
            try:
                _, _, original = wrapt.resolve_path(patch.module, patch.path)
            except (
                ImportError,
                AttributeError,
                getattr(wrapt, "PathResolutionError", AttributeError),
            ):
                if patch.optional:
                    continue
                _fail(
                    name,
                    "failed",
                    f"patch target {patch.module}.{patch.path} not found",
                    version,
                    supported,
                )
                return
            resolved.append((patch, original))
        live = _Live(spec, version)
        try:
            for patch, original in resolved:
                func = getattr(original, "__func__", original)
                is_async = inspect.iscoroutinefunction(func)
                wrapper = _make_wrapper(live, patch, is_async)
                if isinstance(original, property):
                    handle = _wrap_property(patch.module, patch.path, wrapper)
                else:
                    handle = wrapt.wrap_function_wrapper(patch.module, patch.path, wrapper)
                live.handles.append((patch.module, patch.path, handle))
            if spec.setup is not None:
                live.undo = spec.setup()
        except Exception:
            _remove(live)
            raise
        _LIVE[name] = live
        logger.debug("ua_autotag: patched %s %s", name, version)
    except Exception as exc:
        _fail(
            name, "failed", f"{type(exc).__name__}: {telemetry.scrub(str(exc))}", version, supported
        )


def _remove(live: _Live) -> None:
    """Unwrap ``live``'s patches, restoring the original objects; never raises."""
    live.on = False  # anything left in a chain becomes a pass-through
    for module, path, handle in reversed(live.handles):
        try:
            if hasattr(wrapt, "unwrap_object"):
                wrapt.unwrap_object(module, path, handle, missing_ok=True)
            else:  # wrapt < 2: only an outermost wrapper can be removed
                parent, attribute, current = wrapt.resolve_path(module, path)
                if current is handle:
                    setattr(parent, attribute, handle.__wrapped__)  # type: ignore[attr-defined]
        except Exception as exc:
            logger.debug(
                "ua_autotag: left a disabled wrapper on %s.%s (%s)",
                module,
                path,
                type(exc).__name__,
            )
    live.handles.clear()
    if live.undo is not None:
        try:
            live.undo()
        except Exception as exc:
            logger.debug("ua_autotag: undo of %s failed: %s", live.spec.name, type(exc).__name__)
        live.undo = None


def _hook(name: str) -> Callable[[Any], None]:
    def on_import(module: Any) -> None:  # an exception here would fail the user's import
        try:
            with _LOCK:
                _PENDING.discard(name)
                _apply(name)
        except Exception:  # pragma: no cover - _apply already never raises
            pass

    return on_import


def instrument(settings: Settings) -> Settings:
    """Make ``settings`` active and (re)apply integrations; see ``ua_autotag.instrument``."""
    with _LOCK:
        previous = config._ACTIVE
        config._set_active(settings)
        for name, entry in CATALOG.items():
            if not settings.enabled(name):
                live = _LIVE.pop(name, None)
                if live is not None:
                    _remove(live)
                _FAILED.pop(name, None)
                continue
            if previous is None:
                _FAILED.pop(name, None)  # a fresh instrument() tries again
            if name in _LIVE:
                continue  # already wrapped: the new settings take effect at the next call
            if name not in _PENDING:
                # fires at once if the module is already imported, else at its import
                _PENDING.add(name)
                wrapt.register_post_import_hook(_hook(name), entry.trigger)
    return settings


def uninstrument() -> None:
    """Remove every patch and deactivate; originals are restored by identity."""
    with _LOCK:
        for live in _LIVE.values():
            _remove(live)
        _LIVE.clear()
        _FAILED.clear()
        config._set_active(None)


def status() -> Dict[str, IntegrationStatus]:
    """Per integration: patched, waiting, disabled, unsupported or failed (with why)."""
    with _LOCK:
        settings = config._ACTIVE
        rows: Dict[str, IntegrationStatus] = {}
        for name, entry in CATALOG.items():
            if name in _LIVE:
                live = _LIVE[name]
                rows[name] = IntegrationStatus(name, "patched", live.version, live.spec.supported)
                continue
            if name in _FAILED:
                rows[name] = _FAILED[name]
                continue
            try:
                spec: Optional[Integration] = load_spec(name)
            except Exception:
                spec = None
            supported = spec.supported if spec is not None else None
            version = installed_version(spec.distributions) if spec is not None else None
            if settings is None:
                rows[name] = IntegrationStatus(
                    name, "disabled", version, supported, "ua_autotag is not instrumented"
                )
            elif not settings.enabled(name):
                rows[name] = IntegrationStatus(
                    name,
                    "disabled",
                    version,
                    supported,
                    f"disabled ({settings.sources.get('disabled')})",
                )
            elif version is None and spec is not None and entry.trigger not in sys.modules:
                rows[name] = IntegrationStatus(
                    name, "waiting", None, supported, f"{entry.trigger} is not installed"
                )
            else:
                rows[name] = IntegrationStatus(
                    name, "waiting", version, supported, f"{entry.trigger} not imported yet"
                )
        return rows
