"""What an integration declares: the patches, how each tags a call, and what it needs.

Pure declarations, no wrapt (loaded with the integrations, at a client's import): an
integration module builds one :class:`Integration` of
:class:`Patch` rows and small functions taking a :class:`Tag`. The engine
(``ua_autotag.engine``) turns each patch into one wrapper with uniform behaviour.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

from . import telemetry
from .catalog import CATALOG
from .settings import Settings
from .value import UserAgent

__all__ = [
    "Integration",
    "IntegrationStatus",
    "Patch",
    "Tag",
    "argument",
    "pool_pins",
    "with_argument",
]

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
SpanPredicate = Callable[[Settings, Any, Args, Kwargs], bool]
Resolver = Callable[[Any], Optional[Settings]]


class Patch(NamedTuple):
    """One wrapped attribute: ``module`` + dotted ``path`` (``"Class.method"``).

    Tagging: ``before`` rewrites the call's arguments, ``after`` its result (awaited
    first for coroutine functions); ``span`` opens a connect span around the call (or is
    a predicate ``(settings, instance, args, kwargs) -> bool`` for clients that reach
    Databricks and other targets through one call), ``target`` reads (address, port)
    from the arguments for it. A ``path`` naming a property wraps its getter.
    ``settings`` replaces the per-call attribution for this patch (an object that
    already knows its product: a Spark session's channel builder).

    Pinning (no tagging): ``pin="create"`` on a constructor of a long-lived object
    (engine, pool, client) records the product whose code creates it - or, with
    ``pin_from``, the product of an argument already pinned (an SDK client built from a
    product's ``Config``); ``pin="use"`` on a method that opens connections attributes
    them to that recorded product, on whatever thread (on a tagging patch, the one
    wrapper does both); ``pin="fill"`` on a method that opens connections to fill a pool
    does the same, and when no product created the pool (the customer did, or it is
    older than ua-autotag's activation) attributes them to customer code - never to
    whoever triggered the fill.

    Availability: ``optional`` patches may be absent in some versions (no warning);
    without one, a missing non-optional patch makes the integration "partial" (one
    warning) unless it is ``essential`` (the integration cannot tag at all without it).
    ``when`` is the module whose import applies the patch when it is not part of the
    client's own package (``psycopg_pool`` for psycopg): it is never imported by us.

    Layers wrapped only when needed (otherwise the call runs no wrapper of ours at all):
    ``spans_only`` exists for connect spans (its ``before``/``after`` at most back up a
    missing tagging patch): wrapped while a span could record (spans on and an
    OpenTelemetry SDK imported). ``fallback`` tags the same call as another patch one
    layer further out: wrapped only when a tagging patch of its integration is missing.
    Both are always wrapped when one is missing.

    ``leaf``: nothing patched runs inside this call (a property getter, a send step below
    every other patched layer), so no decision is handed down to inner layers: with
    products registered a pinned object's request pays its pin look-up and nothing else.
    """

    module: str
    path: str
    before: Optional[Before] = None
    after: Optional[After] = None
    span: Union[bool, SpanPredicate] = False
    target: Optional[Target] = None
    optional: bool = False
    essential: bool = False
    pin: Optional[str] = None
    when: Optional[str] = None
    settings: Optional[Resolver] = None
    pin_from: Optional[Callable[[Args, Kwargs], Any]] = None
    spans_only: bool = False
    fallback: bool = False
    leaf: bool = False

    @property
    def tags(self) -> bool:
        """Whether this patch puts the value into a call (rather than pinning or spanning)."""
        return self.before is not None or self.after is not None

    @property
    def name(self) -> str:
        return f"{self.module}.{self.path}"


def pool_pins(
    module: str, cls: str, opens: str, when: Optional[str] = "", optional: bool = True
) -> Tuple[Patch, Patch]:
    """The two pins of a pool class: its constructor records the creating product, its
    ``opens`` method connects as that product (from whatever thread runs it), or as
    customer code for a pool no product created (``pin="fill"``).

    ``when`` defaults to ``module`` (a module the client does not import itself).
    """
    trigger = module if when == "" else when
    return (
        Patch(module, f"{cls}.__init__", pin="create", when=trigger, optional=optional),
        Patch(module, f"{cls}.{opens}", pin="fill", when=trigger, optional=optional),
    )


class Integration(NamedTuple):
    """A client library: its supported range, ``db.system.name`` and patches.

    The distributions, trigger and carrier come from :data:`ua_autotag.catalog.CATALOG`.
    ``setup`` is extra set-up beyond wrapping (descriptors, listeners); it returns its
    undo, and counts as a tagging patch.
    """

    name: str
    supported: str  # PEP 440 specifier set, e.g. ">=3.1,<4"
    system: str
    patches: Tuple[Patch, ...]
    setup: Optional[Callable[[], Callable[[], None]]] = None

    @property
    def carrier(self) -> Optional[str]:
        return CATALOG[self.name].carrier

    @property
    def distributions(self) -> Tuple[str, ...]:
        return CATALOG[self.name].distributions

    @property
    def trigger(self) -> str:
        return CATALOG[self.name].trigger


class IntegrationStatus(NamedTuple):
    """One row of ``status()``: patched, partial, waiting, disabled, unsupported or failed.

    ``missing`` names the patches that could not be applied (a ``partial`` integration
    still tags through the rest).
    """

    name: str
    state: str
    version: Optional[str] = None
    supported: Optional[str] = None
    reason: Optional[str] = None
    missing: Tuple[str, ...] = ()
