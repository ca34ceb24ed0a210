"""On a Spark executor: run a function with the value decided where it was handed to Spark.

Where user code hands a function to Spark (an RDD transformation, a UDF, a pandas
function, a streaming ``foreach`` writer), the ``pyspark`` integration
(:mod:`ua_autotag.integrations.pyspark`) replaces it with a :class:`Carried` function:
the decision (a scope's value, the product of the code handing it over, or the process
default) travels with it as a short text (:func:`payload`). Its pickle unpickles through
``pydoc.locate("ua_autotag.executor.receive")``, which is :func:`receive` in a Python
where ua-autotag is installed and None where it is not (or an older release without this
module): then ``{None: itemgetter(0)}.get(...)`` hands back the bare function. So
unpickling never raises and the job runs untagged there; nothing but standard-library
names and the function travel (under 200 bytes plus the value).

On the executor :func:`receive` switches the engine on for the value's integrations
(nothing need be set in the executor's environment) and returns the function wrapped so
that, while it runs, the value is in force: as a ``user_agent()`` scope when it was one
on the driver, else one step below the stack rule (a product's own code the function
calls still connects as that product). Set per call, and per resume of the iterator the
function returns (chained RDD stages each run with their own value).

Standard library only at import: the trampoline imports this module in every Spark
Python worker a carried function reaches.
"""

from __future__ import annotations

import operator
import pydoc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextvars import ContextVar
    from typing import Any, Callable, Dict, Iterator, Optional, Tuple

    from .settings import Settings

__all__ = ["Carried", "carry", "payload", "receive"]

#: payload format; a newer executor reads older formats, an unknown one runs untagged
VERSION = "1"
#: payload kinds: a ``user_agent()`` scope, a product, the process default
SCOPE, PRODUCT, DEFAULT = "s", "p", "d"
#: payload flag: the function returns a value (a UDF called per row), never an iterator
VALUE = "v"


# ------------------------------------------------------------------ driver: the carrier


class _Locate:
    """Unpickles as ``pydoc.locate("ua_autotag.executor.receive")``: the function, or None.

    ``pydoc`` answers None for a module that is not installed (it is imported by
    pyspark's worker anyway); ``importlib`` would raise.
    """

    def __reduce__(self) -> Tuple[Any, Tuple[str]]:
        return pydoc.locate, (f"{__name__}.receive",)


class _Select:
    """Unpickles as :func:`receive`, or ``itemgetter(0)`` (the bare function) without it."""

    def __call__(self, pair: Tuple[Any, str]) -> Any:  # the pickler wants a callable
        return pair[0]

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        locate = _LOCATE  # the same object twice: pickled once, then a memo reference
        return dict.get, ({None: operator.itemgetter(0)}, locate, locate)


_LOCATE = _Locate()
_SELECT = _Select()


class Carried:
    """A function handed to Spark with the value decided there; stands in for it.

    Calling it on the driver calls the function (nothing is set: the driver's own rule
    applies there). Its metadata is the function's (``functools.update_wrapper``, and
    any other attribute read through), so Spark's and the user's inspection see the
    function. Pickled, it becomes ``receive((function, payload))`` on the executor.
    """

    def __init__(self, func: Callable[..., Any], text: str) -> None:
        import functools

        # a UDTF's handler class: its name and doc, not its namespace
        updated = () if isinstance(func, type) else functools.WRAPPER_UPDATES
        functools.update_wrapper(self, func, updated=updated)
        self.__wrapped__ = func
        self.ua_autotag_payload = text

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name in _NOT_FORWARDED:
            raise AttributeError(name)
        return getattr(self.__dict__["__wrapped__"], name)

    def __reduce__(self) -> Tuple[Any, Tuple[Tuple[Any, str]]]:
        return _SELECT, ((self.__wrapped__, self.ua_autotag_payload),)

    def __repr__(self) -> str:
        return f"<ua_autotag carried {self.__wrapped__!r}>"


#: never looked up on the function (pickling and copying protocols)
_NOT_FORWARDED = frozenset(
    ("__getstate__", "__setstate__", "__reduce_ex__", "__getnewargs__", "__getnewargs_ex__")
)


def payload(settings: Settings, kind: str, value: bool = False) -> str:
    """The decision as text: ``1<kind>[v] <value> [m=mode] [s=0] [o=only] [x=off] [h=hosts]``.

    Only what differs from the defaults is written; cached per settings.
    """
    key = ("pyspark-payload", kind, value)
    try:
        text: str = settings.cache[key]
        return text
    except KeyError:
        pass
    parts = [VERSION + kind + (VALUE if value else ""), settings.user_agent.text]
    if settings.mode != "append":
        parts.append("m=" + settings.mode)
    if not settings.spans:
        parts.append("s=0")
    if settings.integrations is not None:
        parts.append("o=" + ",".join(sorted(settings.integrations)))
    if settings.disabled:
        parts.append("x=" + ",".join(sorted(settings.disabled)))
    if settings.rest_hosts:
        parts.append("h=" + ",".join(settings.rest_hosts))
    text = settings.cache[key] = " ".join(parts)
    return text


def carry(func: Any, text: str) -> Any:
    """``func`` carrying ``text`` (a function already carrying a decision keeps its own)."""
    if isinstance(func, Carried):
        return func
    return Carried(func, text)


# --------------------------------------------------------------- executor: the receiver

#: payload -> (slot to set, settings, returns a plain value); one entry per value
_RECEIVED: Dict[str, Tuple[Any, Settings, bool]] = {}
_WARNED = False


class _ScopeSlot:
    """The ``user_agent()`` scope (a context variable) behind the ``value`` interface of
    :data:`ua_autotag.engine.attribution.HANDED`: for a value that was a scope where it
    was handed over (it wins over everything inside, as there)."""

    __slots__ = ("var",)

    def __init__(self, var: ContextVar[Optional[Settings]]) -> None:
        self.var = var

    @property
    def value(self) -> Optional[Settings]:
        return self.var.get()

    @value.setter
    def value(self, settings: Optional[Settings]) -> None:
        self.var.set(settings)


def receive(pair: Tuple[Any, str]) -> Any:
    """``(function, payload)`` -> the function, run with the payload's value in force.

    Never raises: anything unexpected (a payload of a newer format) runs the function
    as it is, with one warning per process.
    """
    func, text = pair
    try:
        found = _RECEIVED.get(text)
        if found is None:
            found = _accept(text)
        slot, settings, value = found
        return _wrap(func, slot, settings, value)
    except Exception as exc:
        _warn_once(exc)
        return func


def _accept(text: str) -> Tuple[Any, Settings, bool]:
    """Parse a payload, register its settings with the engine (arming its integrations)."""
    from . import engine
    from .engine import attribution

    head, ua_text, *options = text.split(" ")
    if len(head) < 2 or head[0] != VERSION or head[1] not in (SCOPE, PRODUCT, DEFAULT):
        raise ValueError(f"unknown payload format {head!r}")
    settings = _settings(ua_text, options)
    engine.carry(settings)
    slot: Any = attribution.HANDED
    if head[1] == SCOPE:
        slot = _ScopeSlot(attribution.handed_scope())
    found = (slot, settings, VALUE in head[2:])
    if len(_RECEIVED) > 256:
        _RECEIVED.clear()
    _RECEIVED[text] = found
    return found


def _settings(ua_text: str, options: Any) -> Settings:
    from .settings import Settings
    from .value import UserAgent

    fields = dict(option.split("=", 1) for option in options)
    only = fields.get("o")
    return Settings(
        UserAgent.parse(ua_text),
        mode=fields.get("m", "append"),
        spans=fields.get("s") != "0",
        integrations=frozenset(only.split(",")) if only is not None else None,
        disabled=frozenset(fields["x"].split(",")) if "x" in fields else frozenset(),
        rest_hosts=tuple(fields["h"].split(",")) if "h" in fields else (),
        sources={"user_agent": "handed over with a Spark function"},
    )


#: what Spark calls on a Python UDTF's handler instance (besides its constructor)
_UDTF_METHODS = ("__init__", "eval", "terminate", "cleanup")


def _wrap_class(cls: type, slot: Any, settings: Settings) -> type:
    """A UDTF handler class: a subclass whose methods run with ``settings`` in force."""
    namespace: Dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    for name in _UDTF_METHODS:
        method = getattr(cls, name, None)
        if method is None or method is object.__init__ or not callable(method):
            continue
        namespace[name] = _wrap(method, slot, settings, False)
    return type(cls.__name__, (cls,), namespace)


def _wrap(func: Any, slot: Any, settings: Settings, value: bool) -> Any:
    """``func`` running with ``settings`` in ``slot`` (per call, per step of its iterator).

    The previous value is put back after each call, so nested or chained functions with
    other values (pipelined RDD stages) each run with their own.
    """
    import functools

    if isinstance(func, type):  # a Python UDTF's handler class
        return _wrap_class(func, slot, settings)

    if value:

        def run(*args: Any, **kwargs: Any) -> Any:
            old = slot.value
            slot.value = settings
            try:
                return func(*args, **kwargs)
            finally:
                slot.value = old

    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            old = slot.value
            slot.value = settings
            try:
                result = func(*args, **kwargs)
            finally:
                slot.value = old
            if hasattr(result, "__next__"):  # an iterator: its work happens as it is read
                return _resumed(result, slot, settings)
            return result

    functools.update_wrapper(run, func)  # skips what a callable object lacks
    # Spark reads the arity of grouped-map functions with getfullargspec, which does not
    # follow __wrapped__ but honours __signature__
    try:
        import inspect

        run.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        pass
    return run


def _resumed(iterator: Iterator[Any], slot: Any, settings: Settings) -> Iterator[Any]:
    """``iterator``, each step run with ``settings`` in force (and its close, if cut short)."""
    step = iterator.__next__
    try:
        while True:
            old = slot.value
            slot.value = settings
            try:
                item = step()
            except StopIteration:
                return
            finally:
                slot.value = old
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            old = slot.value
            slot.value = settings
            try:
                close()
            finally:
                slot.value = old


def _warn_once(exc: Exception) -> None:
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    try:
        import logging

        logging.getLogger("ua_autotag").warning(
            "ua_autotag: a Spark function runs untagged on this executor: %s",
            type(exc).__name__,
        )
    except Exception:
        pass
