"""One OpenTelemetry span (and one counter increment) per tagged connection.

Uses only ``opentelemetry-api``, imported on first use: with no SDK configured the
tracer is the API's proxy, spans are non-recording and cost a few hundred ns.

Span: kind CLIENT, name ``connect <server.address>:<server.port>`` (``connect`` plus
the target, as the database semantic conventions name spans without a query), with
``db.system.name``, ``db.operation.name=connect``, ``server.address``, ``server.port``,
``user_agent.original`` (the value actually sent), ``ua_autotag.integration``,
``ua_autotag.mode`` and ``ua_autotag.client.version``. Layers nest: when a patched
call runs inside another patched call (SQLAlchemy -> driver, pool -> connect), the
inner layer reports into the outer span instead of starting its own.
"""

from __future__ import annotations

import contextvars
import functools
from time import time_ns as _time_ns
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .scrub import scrub

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "ConnectSpan",
    "ReportHandle",
    "current",
    "note",
    "note_to",
    "set_ledger",
    "start",
    "start_reported",
]

_tracer: Any = None
_counter: Any = None
_api: Any = None
_providers: Any = None  # (trace module, metrics state) when the no-SDK check works


class _NotStarted:
    """Stands in for a span the SDK failed to start: records nothing."""

    def is_recording(self) -> bool:
        return False

    def end(self) -> None:
        pass


_NOT_STARTED: Any = _NotStarted()

#: the connection report's recorder (:func:`ua_autotag.ledger.record`) while it is on
_LEDGER: Any = None


def set_ledger(recorder: Any) -> None:
    """Hand every finished connect handle to ``recorder`` too (None: stop)."""
    global _LEDGER
    _LEDGER = recorder


_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "ua_autotag_connect_span", default=None
)


def _load() -> None:
    global _tracer, _counter, _api, _providers
    import os

    from opentelemetry import metrics, trace

    from . import __version__

    _api = trace
    _tracer = trace.get_tracer("ua_autotag", __version__)
    _counter = metrics.get_meter("ua_autotag", __version__).create_counter(
        "ua_autotag.connections",
        unit="{connection}",
        description="Connections ua-autotag tagged, by integration and outcome",
    )
    # Where the API keeps the providers the application installed (None until then).
    # Private names: if a future API moves them we simply always make spans.
    try:
        from opentelemetry.metrics import _internal as metrics_state

        env_configured = any(
            os.environ.get(var)
            for var in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
        )
        if (
            not env_configured
            and hasattr(trace, "_TRACER_PROVIDER")
            and hasattr(metrics_state, "_METER_PROVIDER")
        ):
            _providers = (trace, metrics_state)
    except ImportError:  # pragma: no cover - API layout changed
        _providers = None


def sdk_configured() -> bool:
    """Whether the application installed a tracer or meter provider (an SDK).

    Without one every span would be non-recording and the counter a no-op: skipping
    them keeps "spans on, no SDK" as cheap as spans off. Checked at each call, so an
    SDK configured after ``instrument()`` is picked up.
    """
    if _providers is None:
        return True
    trace_mod, metrics_state = _providers
    return trace_mod._TRACER_PROVIDER is not None or metrics_state._METER_PROVIDER is not None


def sdk_possible() -> bool:
    """Whether a span could record now or later without another import: an SDK module is
    loaded, a provider is installed, or the environment names one. Cheaper and wider
    than :func:`sdk_configured`; decides whether span-only layers are wrapped at all."""
    import os
    import sys

    from .catalog import SDK_MODULES

    modules = sys.modules
    if any(name in modules for name in SDK_MODULES):
        return True
    if os.environ.get("OTEL_PYTHON_TRACER_PROVIDER") or os.environ.get(
        "OTEL_PYTHON_METER_PROVIDER"
    ):
        return True
    trace_api = modules.get("opentelemetry.trace")
    metrics_state = modules.get("opentelemetry.metrics._internal")
    return (
        getattr(trace_api, "_TRACER_PROVIDER", None) is not None
        or getattr(metrics_state, "_METER_PROVIDER", None) is not None
    )


def may_record() -> bool:
    """Whether a span started now could record: False only once the OpenTelemetry API is
    loaded and no SDK is configured (then :func:`start` returns None anyway).

    For span-only bookkeeping that can be skipped in the usual "spans on, no SDK" case.
    """
    return _tracer is None or sdk_configured()


def _set(handle: Any, sent: Optional[str], address: Optional[str], port: Optional[int]) -> None:
    """Keep what a layer reports about its connection (None: not known there); a started
    span learns it at finish."""
    if sent is not None:
        handle.sent = sent
    if address is not None:
        handle.address = address
    if port is not None:
        handle.port = port
    if handle.span is not None:
        handle.changed = True


class ConnectSpan:
    """The span of one connection attempt; inner layers report into it.

    The SDK span is started by :meth:`begin`, once the tagging layer has prepared the
    call: by then the target and the value sent are known, so the name and every
    attribute go in at start in one dict (the SDK validates attributes under a lock per
    call; a rename and a second ``set_attributes`` cost as much again). The start time
    is taken when the handle is created, so the span still covers our own work.
    What inner layers report later is added at :meth:`finish`.
    """

    __slots__ = (
        "_token",
        "address",
        "attributes",
        "changed",
        "integration",
        "port",
        "product",
        "sent",
        "sockets",
        "span",
        "started",
        "system",
        "value",
    )

    def __init__(self, attributes: Dict[str, Any], integration: str, product: str) -> None:
        self.span: Any = None
        self.attributes = attributes
        self.integration = integration
        self.product = product
        self.address: Optional[str] = None
        self.port: Optional[int] = None
        self.sent: Optional[str] = None
        self.changed = False
        self.started = _time_ns()
        self._token: Any = None
        # for the connection report only: the value the layer tagged with, the carrier
        # system, and the sockets opened inside the call (seen by its audit hook)
        self.value: Optional[str] = None
        self.system: Optional[str] = None
        self.sockets: List[Tuple[str, Any, Optional[int]]] = []

    #: what an inner layer reports about the connection
    set = _set

    def _name(self) -> str:
        address = self.address
        if not address:
            return "connect"
        return f"connect {address}" if self.port is None else f"connect {address}:{self.port}"

    def _reported(self) -> Dict[str, Any]:
        attributes: Dict[str, Any] = {}
        if self.address:
            attributes["server.address"] = self.address
        if self.port is not None:
            attributes["server.port"] = int(self.port)
        if self.sent is not None:
            attributes["user_agent.original"] = self.sent
        return attributes

    def begin(self) -> None:
        """Start the SDK span with everything known so far; never raises."""
        if self.span is not None:
            return
        try:
            reported = self._reported()
            attributes = {**self.attributes, **reported} if reported else self.attributes
            self.span = _tracer.start_span(
                self._name(),
                kind=_api.SpanKind.CLIENT,
                attributes=attributes,
                start_time=self.started,
            )
        except Exception:  # pragma: no cover - a broken SDK must not break the app
            self.span = _NOT_STARTED

    def finish(self, exc: Optional[BaseException]) -> None:
        """End the span; never raises (the caller's own outcome must win)."""
        _hand_over(self, exc)
        if not self.attributes:
            return  # a handle for the report only: no span, no counter
        try:
            if self.span is None:
                self.begin()
            span = self.span
            if span.is_recording():
                if self.changed:  # reported by an inner layer after the start
                    if self.address:
                        span.update_name(self._name())
                    span.set_attributes(self._reported())
                if exc is not None:
                    message = scrub(str(exc))
                    span.add_event(
                        "exception",
                        {"exception.type": type(exc).__qualname__, "exception.message": message},
                    )
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(_api.Status(_api.StatusCode.ERROR, message))
            span.end()
            _counter.add(1, _counter_attributes(self.integration, self.product, exc is not None))
        except Exception:  # pragma: no cover - a broken SDK must not break the app
            pass


_NO_ATTRIBUTES: Dict[str, Any] = {}


def _hand_over(handle: Any, exc: Optional[BaseException]) -> None:
    """A handle ends: it stops being the context's, and the report (if on) gets it; never
    raises (the caller's own outcome must win)."""
    try:  # noqa: SIM105 - a with-statement costs more than the reset on this path
        _CURRENT.reset(handle._token)
    except Exception:  # reset from another context: nothing to undo
        pass
    if _LEDGER is not None:
        try:  # noqa: SIM105
            _LEDGER(handle, exc)
        except Exception:  # the report must not break the app either
            pass


def _label(settings: Settings) -> str:
    """``settings.label``, kept in the settings' cache (it is computed on each read)."""
    label: str = settings.label
    settings.cache["label"] = label
    return label


class ReportHandle:
    """The connection report's handle when no span could record: what the report lists.

    Opened by every tagging call while the report is on, so it does the least it can:
    no start time, no attributes, no list until a socket is seen (the class holds the
    defaults; an instance stores only what differs), the product's label read when the
    report records it. Same interface as :class:`ConnectSpan` for the engine.
    """

    span: Any = _NOT_STARTED
    attributes = _NO_ATTRIBUTES
    address: Optional[str] = None
    port: Optional[int] = None
    sent: Optional[str] = None
    value: Optional[str] = None
    sockets: Any = ()  # a list once the audit hook saw one opened inside the call
    _token: Any = None

    def __init__(self, integration: str, settings: Settings, system: str) -> None:
        """Open it: it is the context's handle until :meth:`finish`."""
        self.integration = integration
        self.product = settings.cache.get("label") or _label(settings)
        self.system = system
        self._token = _CURRENT.set(self)

    #: what an inner layer reports (the same rule as a span's; ``changed`` is unused here)
    set = _set

    def begin(self) -> None:
        pass

    #: hand the handle to the report; never raises (the function itself: no call more)
    finish = _hand_over


@functools.lru_cache(maxsize=256)  # (integration, product, failed): a handful per process
def _counter_attributes(integration: str, product: str, failed: bool) -> Dict[str, Any]:
    """The counter's attributes, built once per combination (never mutated)."""
    return {
        "ua_autotag.integration": integration,
        "ua_autotag.product": product,
        "outcome": "error" if failed else "ok",
    }


def _start_attributes(
    integration: str, system: str, settings: Settings, client_version: Optional[str]
) -> Dict[str, Any]:
    """The span's start attributes: computed once per (integration, settings, version)."""
    key = ("span", integration, client_version)
    attributes: Optional[Dict[str, Any]] = settings.cache.get(key)
    if attributes is None:
        attributes = {
            "db.system.name": system,
            "db.operation.name": "connect",
            "ua_autotag.integration": integration,
            "ua_autotag.mode": settings.mode,
            "ua_autotag.client.version": client_version or "unknown",
            "ua_autotag.product": settings.label,
        }
        if settings.packages:
            attributes["ua_autotag.product.packages"] = list(settings.packages)
        settings.cache[key] = attributes
    return attributes


def start(
    integration: str, system: str, settings: Settings, client_version: Optional[str]
) -> Optional[ConnectSpan]:
    """Open a connect span (the SDK span starts at :meth:`ConnectSpan.begin`); None when
    an outer layer has one or no SDK is configured."""
    if _CURRENT.get() is not None:
        return None
    if _tracer is None:
        _load()
    if not sdk_configured():
        return None
    handle = ConnectSpan(
        _start_attributes(integration, system, settings, client_version),
        integration,
        settings.label,
    )
    handle._token = _CURRENT.set(handle)
    return handle


def start_reported(
    integration: str, system: str, settings: Settings, client_version: Optional[str],
    span: bool,
) -> Any:  # fmt: skip
    """A connect handle for the connection report (report on): a :class:`ConnectSpan`
    when ``span`` (the layer wants one, spans on) and one could record, else the lighter
    :class:`ReportHandle`; None when an outer layer has a handle. Needs no OpenTelemetry
    when no span is wanted."""
    if _CURRENT.get() is not None:
        return None
    recording = False
    if span:
        try:
            if _tracer is None:
                _load()
            recording = sdk_configured()
        except Exception:  # no OpenTelemetry installed: the report works without it
            recording = False
    if recording:
        attributes = _start_attributes(integration, system, settings, client_version)
        handle = ConnectSpan(attributes, integration, settings.label)
        handle.system = system
        handle._token = _CURRENT.set(handle)
        return handle
    return ReportHandle(integration, settings, system)


#: The connect handle in progress in this context, if any: a :class:`ConnectSpan` or,
#: report only, a :class:`ReportHandle` (the contextvar's own ``get``: asked on every
#: tagging call and, with the report on, on every socket event).
current: Callable[[], Any] = _CURRENT.get


def note(sent: Optional[str] = None, address: Optional[str] = None, port: Any = None) -> None:
    """Report what was sent (and where) to the connect span in progress, if any."""
    handle = _CURRENT.get()
    if handle is not None:
        note_to(handle, sent, address, port)


def note_to(handle: Any, sent: Optional[str], address: Optional[str], port: Any) -> None:
    """:func:`note`, to a handle the caller already holds (:func:`current`)."""
    if type(port) is not int:
        try:
            port = None if port in (None, "") else int(port)
        except (TypeError, ValueError):
            port = None
    handle.set(sent, address, port)
