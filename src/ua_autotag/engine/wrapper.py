"""The per-call wrapper of one patch: a guard, then one body (and the same body awaited).

The shape of ddtrace's ``with_traced_module`` and sentry's ``ensure_integration_enabled``:
the **guard** asks whether anything applies to this call (the integration is on, the
attribution rule gives settings, the integration is active in them, a span-only layer
has a span to open) and otherwise calls straight through; the **body** does the rest,
the same for every case - span or not, products registered or not, before and after
steps, errors. Every failure of ours inside a user's call goes to :meth:`Applied.contain`,
the one containment policy. The apply/remove lifecycle is :mod:`.patcher`'s.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Dict, Optional, Tuple

from .. import telemetry
from ..merge import CARRIERS
from ..scrub import scrub
from ..settings import Settings
from ..spec import Integration, Patch, Tag
from ..value import ConfigurationError, InvalidUserAgent
from . import attribution

__all__ = ["Applied", "pin_wrapper", "set_reporting", "tag_wrapper"]

logger = logging.getLogger("ua_autotag")

Args = Tuple[Any, ...]
Kwargs = Dict[str, Any]
Wrapper = Callable[[Any, Any, Args, Kwargs], Any]

#: the connection report (``ua_autotag.report()``) is on: every tagging call opens a
#: connect handle the report records (see :mod:`ua_autotag.ledger`)
_REPORTING = bool(getattr(sys.modules.get("ua_autotag.ledger"), "is_on", bool)())


def set_reporting(on: bool) -> None:
    """Switch the connection report's handles on or off (a module flag read per call)."""
    global _REPORTING
    _REPORTING = bool(on)


class Applied:
    """What the wrappers of an applied integration share: its switch and its one warning."""

    __slots__ = ("on", "spec", "version", "warned")

    def __init__(self, spec: Integration, version: Optional[str]) -> None:
        self.spec = spec
        self.version = version
        self.on = True  # off: anything of ours left in a chain passes calls through
        self.warned = False

    def contain(
        self, patch: Patch, exc: Exception, settings: Optional[Settings], step: str = "tag"
    ) -> None:
        """A step of ours failed inside a user's call: the one containment policy.

        Re-raised only when it is a configuration error under ``strict`` (the only
        exception of ours a user's call can ever see); otherwise the call goes ahead
        without that step, the first failure of the integration logs one warning
        (secrets scrubbed), later ones log at DEBUG.
        """
        strict = settings is not None and settings.strict
        if strict and isinstance(exc, (InvalidUserAgent, ConfigurationError)):
            raise exc
        if self.warned:
            logger.debug(
                "ua_autotag: %s could not %s a call again: %s",
                self.spec.name,
                step,
                type(exc).__name__,
            )
            return
        self.warned = True
        logger.warning(
            "ua_autotag: %s could not %s a call to %s (%s: %s); the call went ahead "
            "without it. Further failures are logged at DEBUG.",
            self.spec.name,
            step,
            patch.name,
            type(exc).__name__,
            scrub(str(exc)),
        )


def tag_wrapper(applied: Applied, patch: Patch, is_async: bool) -> Wrapper:
    """The wrapt wrapper of a tagging (or span) patch: the guard, then the body."""
    spec = applied.spec
    name, system, carrier = spec.name, spec.system, spec.carrier
    limit = CARRIERS[carrier].max_bytes if carrier is not None else None
    key = ("tag", carrier)
    before, after, target, resolver = patch.before, patch.after, patch.target, patch.settings
    want_span, tagging, pin_use = patch.span, patch.tags, patch.pin == "use"
    #: a span-only layer: nothing to do unless a span is wanted
    passive = not tagging and target is None
    #: inner layers of this call must resolve as this one did (products registered)
    decides = tagging and not patch.leaf
    current, contain = attribution.current, applied.contain
    decide, undecide = attribution.decide, attribution.undecide
    pin_of = attribution.pin_of
    may_record, span_now = telemetry.may_record, telemetry.current
    report_only = telemetry.ReportHandle

    def tag_for(settings: Settings) -> Tag:
        """The :class:`Tag` of ``settings`` for this carrier (built once, then cached)."""
        ua = settings.user_agent
        value = ua.text
        if limit is not None and carrier is not None and len(value) > limit:
            value = ua.render(carrier)  # raises, naming the carrier and its limit
        tag = settings.cache[key] = Tag(ua, value, settings)
        return tag

    def open_span(settings: Settings, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        try:
            if callable(want_span) and not want_span(settings, instance, args, kwargs):
                return None
            return telemetry.start(name, system, settings, applied.version)
        except Exception as exc:  # a broken OpenTelemetry set-up must not break the app
            contain(patch, exc, None, "start a span for")
            return None

    def report_handle(settings: Settings, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        try:
            wanted = not callable(want_span) or bool(want_span(settings, instance, args, kwargs))
            return telemetry.start_reported(name, system, settings, applied.version, wanted)
        except Exception as exc:
            contain(patch, exc, None, "report")
            return None

    def enter(settings: Settings, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        """Before the call: span, decision for inner layers, tag, target; (span, token,
        tag, args, kwargs). On a strict configuration error, what it set is undone."""
        span = None
        if _REPORTING and tagging:  # the report's handle (with the span, if one records)
            if want_span and settings.spans and may_record():
                span = report_handle(settings, instance, args, kwargs)
            elif span_now() is None:  # no span wanted: the light handle, inline
                span = report_only(name, settings, system)
        elif want_span and settings.spans and may_record():
            span = open_span(settings, instance, args, kwargs)
        token = None
        if decides and attribution.REGISTERED:  # a global: no call
            token = decide(settings, pin_of(instance) if pin_use and instance is not None else None)
        tag = None
        if tagging:
            try:
                tag = settings.cache.get(key) or tag_for(settings)
                if before is not None:
                    args, kwargs = before(tag, instance, args, kwargs)
            except Exception as exc:
                tag = None
                try:
                    contain(patch, exc, settings)
                except BaseException as error:  # strict: the caller gets it, we clean up
                    leave(span, token, error)
                    raise
        if _REPORTING and tag is not None:
            reported = span or span_now()
            if reported is not None and reported.value is None:
                reported.value = tag.value  # what the report lists as the value carried
        if target is not None and span_now() is not None:  # this layer's or an outer one's
            try:
                address, port = target(instance, args, kwargs)
                telemetry.note(None, address, port)
            except Exception as exc:
                contain(patch, exc, None, "read the target of")
        if span is not None and span.span is None:
            span.begin()  # target and value known: every attribute goes in at start
        return span, token, tag, args, kwargs

    def after_step(tag: Tag, instance: Any, args: Args, kwargs: Kwargs, result: Any) -> Any:
        try:
            return after(tag, instance, args, kwargs, result)  # type: ignore[misc]
        except Exception as exc:
            contain(patch, exc, tag.settings)  # raises only a strict configuration error
        return result

    def leave(span: Any, token: Any, exc: Optional[BaseException]) -> None:
        if token is not None:
            undecide(token)
        if span is not None:
            span.finish(exc)

    async def body_async(
        settings: Settings, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs
    ) -> Any:
        """The body below, with the call awaited."""
        span, token, tag, args, kwargs = enter(settings, instance, args, kwargs)
        try:
            result = await wrapped(*args, **kwargs)
            if tag is not None and after is not None:
                result = after_step(tag, instance, args, kwargs, result)
        except BaseException as exc:
            leave(span, token, exc)
            raise
        leave(span, token, None)
        return result

    def wrapper(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        # the guard: is the integration on, is there a value for this call, is the
        # integration active in it, has a span-only layer a span to open
        if not applied.on:
            return wrapped(*args, **kwargs)
        settings = current() if resolver is None else resolver(instance)
        if settings is None or name not in settings.active:
            return wrapped(*args, **kwargs)
        if passive and not (want_span and settings.spans):
            return wrapped(*args, **kwargs)
        if is_async:  # decided now, in the caller's context and on the caller's stack
            if (
                after is not None
                or (_REPORTING and tagging)
                or (want_span and settings.spans and may_record())
                or (decides and attribution.REGISTERED)
            ):  # something to do after the await: the same body, awaited
                return body_async(settings, wrapped, instance, args, kwargs)
            # nothing after the await (no span, no handle, no decision handed down, no
            # after-step): the body's before-part now, then the client's own coroutine
            span, token, tag, args, kwargs = enter(settings, instance, args, kwargs)
            if span is not None or token is not None:  # a span began meanwhile: close it
                leave(span, token, None)
            return wrapped(*args, **kwargs)
        # the body: the same for every case (span or not, products or not, errors)
        span, token, tag, args, kwargs = enter(settings, instance, args, kwargs)
        try:
            result = wrapped(*args, **kwargs)
            if tag is not None and after is not None:
                result = after_step(tag, instance, args, kwargs, result)
        except BaseException as exc:
            leave(span, token, exc)
            raise
        if span is not None:  # leave(), inline: the report opens a handle on every call
            if token is not None:
                undecide(token)
            span.finish(None)
        elif token is not None:
            undecide(token)
        return result

    return wrapper


def pin_wrapper(applied: Applied, patch: Patch, is_async: bool) -> Wrapper:
    """``pin="create"``: remember the creating product; ``"use"``: connect as it;
    ``"fill"`` (a pool filling itself): as it, or as nobody's product when none created it."""
    creator, pin, pin_of, pinned = (
        attribution.creator,
        attribution.pin,
        attribution.pin_of,
        attribution.pinned,
    )
    products_registered, pin_from = attribution.products_registered, patch.pin_from

    if patch.pin == "create":

        def create(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            if not applied.on or not products_registered():
                return wrapped(*args, **kwargs)  # no product registered: nothing to pin
            try:
                source = pin_from(args, kwargs) if pin_from is not None else None
                product = (pin_of(source) if source is not None else None) or creator()
                if instance is not None:
                    pin(instance, product)  # None too: clears what a recycled object had
            except Exception as exc:
                applied.contain(patch, exc, None, "pin the creating product of")
                product = None
            if product is None:
                return wrapped(*args, **kwargs)
            with pinned(product):
                return wrapped(*args, **kwargs)

        return create

    owner_of = attribution.filler if patch.pin == "fill" else pin_of

    def owner(instance: Any) -> Any:
        return owner_of(instance) if applied.on and instance is not None else None

    if is_async:

        async def use_async(wrapped: Any, args: Args, kwargs: Kwargs, product: Any) -> Any:
            with pinned(product):
                return await wrapped(*args, **kwargs)

        def use_wrapper_async(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            product = owner(instance)
            if product is None:
                return wrapped(*args, **kwargs)
            return use_async(wrapped, args, kwargs, product)

        return use_wrapper_async

    def use(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        product = owner(instance)
        if product is None:
            return wrapped(*args, **kwargs)
        with pinned(product):
            return wrapped(*args, **kwargs)

    return use
