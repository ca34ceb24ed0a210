"""Which product a connection belongs to: scopes, pins, the call stack, the process default.

Every wrapper asks :func:`current` once per connect, or :func:`for_object` once per
request of a long-lived object (the same function). The rule, in order:

1. an active ``with ua_autotag.user_agent(...)`` scope (a contextvar);
2. what an outer tagging layer of the same call decided (:func:`decide`), so inner
   layers (requests -> urllib3) tag for the same product;
3. the owner: the pin of the object making the request, else the pin in force
   (long-lived objects - engines, pools, SDK clients - remember the product whose code
   created them and set it while they open connections, on whatever thread; a pool
   nobody's product created fills as :data:`CUSTOMER`: no product), else the innermost
   frame on the call stack whose module belongs to a registered package (product A
   calls into product B and B connects: it is B's; a ``__main__`` run by ``python -m``
   counts as its real module name). Inside :func:`customer_code` (a :class:`HandOver`
   in force) the walk stops where the product handed over and skips that product's
   frames: the customer's code inside gets what it would get on its own, and products
   it calls in turn get theirs;
4. the process default (``instrument()`` without ``packages``);
5. nothing: the call is left exactly as the caller made it.

All of it is one immutable :class:`State` snapshot, replaced (never mutated) when a
product registers or leaves, so a reader needs no lock. The frame walk caches, per module
name, which product (if any) it belongs to: after the first connect from a module it
costs one identity check per frame and one dict lookup per module on the stack.
Imported by ``instrument()``: standard library only, nothing heavy.
"""

from __future__ import annotations

import contextvars
import sys

from ..settings import Settings
from ..value import ConfigurationError, UserAgent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, Optional, Tuple

__all__ = [
    "CUSTOMER",
    "HANDED",
    "PIN",
    "REGISTERED",
    "CustomerCode",
    "HandOver",
    "Product",
    "State",
    "accept",
    "creator",
    "current",
    "customer_code",
    "filler",
    "for_object",
    "handed_scope",
    "pin",
    "pin_of",
    "pinned",
    "products",
    "products_registered",
    "register",
    "scope",
    "state",
    "unregister",
    "use_state",
]

#: the attribute on pinned objects that holds their :class:`Product`
PIN = "_ua_autotag_product"

_CACHE_MAX = 8192


class Product:
    """A registered library product: its current settings (None once removed).

    Objects pin the :class:`Product`, not its settings, so a re-target (``instrument()``
    again for the same packages) reaches objects already created.
    """

    __slots__ = ("packages", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings: Optional[Settings] = settings
        self.packages = settings.packages

    def __repr__(self) -> str:
        return f"Product({self.settings!r})"


class State:
    """One immutable snapshot: the default, the products, and the frame cache for them.

    ``handed``: on a Spark executor, the values that came with the functions it ran
    (:func:`accept`); the rule looks at :data:`HANDED` only when there are some.
    """

    __slots__ = ("by_package", "default", "handed", "module_cache", "products")

    def __init__(
        self,
        default: Optional[Settings],
        products: Tuple[Product, ...],
        handed: Tuple[Settings, ...] = (),
    ) -> None:
        self.default = default
        self.products = products
        self.handed = handed
        self.by_package: Dict[str, Product] = {p: prod for prod in products for p in prod.packages}
        #: module name -> its product (None: no product's)
        self.module_cache: Dict[Any, Optional[Product]] = {}

    def product_of_module(self, module: Optional[str]) -> Optional[Product]:
        """The product owning ``module`` (longest registered package prefix wins)."""
        by_package = self.by_package
        while module:
            product = by_package.get(module)
            if product is not None:
                return product
            module = module.rpartition(".")[0]
        return None

    def every(self) -> Tuple[Settings, ...]:
        """The default, every product's settings and the values handed to this executor."""
        found = [p.settings for p in self.products if p.settings is not None]
        return ((self.default,) if self.default is not None else ()) + tuple(found) + self.handed


#: the owner "nobody's product": in force it ends the owner step (no stack walk), so the
#: call gets the process default or nothing. Set while a pool that no product created
#: fills itself (:func:`filler`), whoever triggered the fill.
CUSTOMER = Product.__new__(Product)
CUSTOMER.settings, CUSTOMER.packages = None, ()


#: the frame walk's cache entry for ``__main__``: look up the module it runs
_MAIN = Product.__new__(Product)
_MAIN.settings, _MAIN.packages = None, ()


class HandOver(Product):
    """In force inside :func:`customer_code`: where a product handed over to its user's code.

    ``boundary`` is the frame that entered the hand-over (frames outside it are not
    looked at) and ``giver`` the module it runs (its product's frames are skipped).
    """

    __slots__ = ("boundary", "giver")

    def __init__(self, boundary: Any, giver: Optional[str]) -> None:
        self.settings, self.packages = None, ()
        self.boundary, self.giver = boundary, giver

    def owner(self, st: State, depth: int) -> Optional[Product]:
        """The innermost product, other than the giver's, between here and the boundary."""
        giver = st.product_of_module(self.giver)
        frame: Any = _getframe(depth)
        boundary = self.boundary
        while frame is not None and frame is not boundary:
            product = st.product_of_module(_module_name(frame.f_globals))
            if product is not None and product is not giver:
                return product
            frame = frame.f_back
        return None


def _module_name(namespace: Dict[str, Any]) -> Any:
    """The module a frame runs: ``__name__``, or for ``__main__`` the name it was run as
    (``python -m pkg.mod``, ``runpy``: ``__spec__.name``)."""
    name = namespace.get("__name__")
    if name == "__main__":
        name = getattr(namespace.get("__spec__"), "name", None) or name
    return name


_STATE: Optional[State] = None
_SCOPED: contextvars.ContextVar[Optional[Settings]] = contextvars.ContextVar(
    "ua_autotag_scoped", default=None
)
_PINNED: contextvars.ContextVar[Optional[Product]] = contextvars.ContextVar(
    "ua_autotag_pinned", default=None
)
#: set by a tagging layer for the duration of its call, so that inner layers of the same
#: connection or request (requests -> urllib3) tag for the same product, never another
_DECIDED: contextvars.ContextVar[Optional[Settings]] = contextvars.ContextVar(
    "ua_autotag_decided", default=None
)


class Handed:
    """On a Spark executor: the value that came with the function running now (the
    product or default of the code that handed it to Spark), below the stack rule.

    A process-wide slot, set and restored around each call of the function (and each
    step of its iterator): a Python worker runs one task at a time, two attribute writes
    cost half of a context variable's set and reset per row, and threads the function
    starts see the value too.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Optional[Settings] = None


HANDED = Handed()
_getframe = sys._getframe


#: whether a product is registered in the snapshot in force (kept with it by
#: :func:`_install`): the engine reads it per tagging call, a global instead of a call
REGISTERED = False


def _install(st: Optional[State]) -> None:
    """Put ``st`` in force (every change of the snapshot goes through here)."""
    global _STATE, REGISTERED
    _STATE = st
    REGISTERED = st is not None and bool(st.by_package)
    report = sys.modules.get("ua_autotag.ledger")
    if report is not None:  # the report's host rule is made of the registered hosts
        report.state_changed()


def state() -> Optional[State]:
    """The snapshot in force, or None when nothing is instrumented."""
    return _STATE


def use_state(st: Optional[State]) -> Optional[State]:
    """Put the snapshot ``st`` in force (None: nothing instrumented, the wrappers pass
    calls through) and return the one it replaced.

    For tools that switch between snapshots without re-patching (the benchmarks compare
    the default alone, products registered and nothing in force in one run).
    """
    old = _STATE
    _install(st)
    return old


def products() -> Tuple[Product, ...]:
    """The registered library products."""
    return () if _STATE is None else _STATE.products


def from_stack(st: State, depth: int = 2) -> Optional[Product]:
    """The product of the innermost frame (from ``depth`` up) in a registered package.

    Cached per module name (a string: nothing of the application is kept alive, and
    byte-identical functions of two modules are told apart, which a code-object key
    would not do). Consecutive frames of one module (a library's internals, recursion)
    cost an identity check.
    """
    cache = st.module_cache
    frame: Any = _getframe(depth)
    last = None
    while frame is not None:
        namespace = frame.f_globals
        if namespace is not last:
            last = namespace
            name = namespace.get("__name__")
            try:
                product = cache[name]
            except KeyError:
                product = _MAIN if name == "__main__" else st.product_of_module(name)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[name] = product
            except TypeError:  # a namespace whose __name__ is not hashable
                product = None
            if product is not None:
                if product is not _MAIN:
                    return product
                # `python -m pkg.mod`, runpy: the module it runs (never cached: which
                # module is `__main__` may change); a plain script has no spec: one get
                spec = namespace.get("__spec__")
                if spec is not None:
                    product = st.product_of_module(getattr(spec, "name", None))
                    if product is not None:
                        return product
        frame = frame.f_back
    return None


def current(obj: Any = None) -> Optional[Settings]:
    """THE attribution rule: the settings that tag a connection opened here, now (by the
    long-lived object ``obj``, if given); None: leave it alone.

    1. a ``with ua_autotag.user_agent(...)`` scope;
    2. what an outer layer of this same call decided (:func:`decide`: requests ->
       urllib3 tag for one product);
    3. the owner (:func:`_owner`): ``obj``'s pin, the pin in force, the innermost frame
       of a registered package;
    4. on a Spark executor, the value handed over with the function running now
       (:mod:`ua_autotag.executor`): the code that handed it over stands below the stack;
    5. the process default; None: leave the call alone.
    """
    st = _STATE
    if st is None:
        return None
    scoped = _SCOPED.get()
    if scoped is not None:
        return scoped
    decided = _DECIDED.get()
    if decided is not None:
        return decided
    if st.by_package:  # no product registered: nobody owns anything
        # the usual case (no object, no pin in force): straight to the stack
        product = from_stack(st, 2) if obj is None and _PINNED.get() is None else _owner(st, obj, 2)
        if product is not None:
            settings = product.settings
            if settings is not None:
                return settings
    if st.handed:
        handed = HANDED.value
        if handed is not None:
            return handed
    return st.default


def _owner(st: State, obj: Any, depth: int) -> Optional[Product]:
    """Step 3 of the rule: ``obj``'s pin, else the pin in force, else the stack (walked
    from frame ``depth``, this function's own being 0).

    A pin in force without settings: :data:`CUSTOMER` (nobody), a :class:`HandOver`
    (the stack up to it), or a removed product's (the stack).
    """
    product = pin_of(obj) if obj is not None else None
    if product is None:
        product = _PINNED.get()
        if product is None:
            product = from_stack(st, depth + 1)
        elif product.settings is None:
            if product is CUSTOMER:
                return None
            if isinstance(product, HandOver):
                product = product.owner(st, depth + 1)
            else:
                product = from_stack(st, depth + 1)
    return product if product is not None and product.settings is not None else None


#: :func:`current` for a request made by a long-lived object (per-request carriers: SDK
#: header, REST): a pinned object costs a scope check and a dict lookup, no stack walk
for_object = current


def creator() -> Optional[Product]:
    """The product creating an object now (step 3 of the rule); None: nobody's.

    An object made while a connection or request is being tagged (a urllib3 pool that
    requests creates lazily at the first request) belongs to the object making that
    request (the pin in force, if any), not to whoever happened to make the first one:
    without a pin in force it stays unpinned and follows the rule at each use.
    """
    st = _STATE
    if st is None or not st.by_package:
        return None
    if _DECIDED.get() is not None:
        pinned = _PINNED.get()
        return pinned if pinned is not None and pinned.settings is not None else None
    return _owner(st, None, 2)


def products_registered() -> bool:
    """Whether a product is registered (else every layer of a call resolves the same)."""
    return REGISTERED


def pin_of(obj: Any) -> Optional[Product]:
    """The product ``obj`` was pinned to at creation, if any (and still registered)."""
    product: Optional[Product] = None
    try:
        product = obj.__dict__.get(PIN)
    except AttributeError:  # __slots__: the weak map, else the id map
        try:
            product = _WEAK.get(obj) if _WEAK is not None else None
        except TypeError:  # no weak references either
            product = None
        if product is None:
            product = _BY_ID.get(id(obj))
    except Exception:
        return None
    return product if product is not None and product.settings is not None else None


def filler(pool: Any) -> Optional[Product]:
    """Who a connection opened to fill ``pool`` belongs to: the product that created the
    pool, else :data:`CUSTOMER` (a pool the customer created, or one made before
    ua-autotag was active), never whoever happened to find the pool empty. None when no
    product is registered (then nobody's code could claim it anyway)."""
    product = pin_of(pool)
    if product is not None:
        return product
    st = _STATE
    return CUSTOMER if st is not None and st.by_package else None


def pin(obj: Any, product: Optional[Product]) -> None:
    """Remember that ``product``'s code created ``obj`` (None: nobody's); never raises.

    Objects without ``__dict__`` or weak references (asyncpg's slotted ``Pool``) are
    remembered by ``id``: every creation of such an object calls this, with None when
    no product created it, so a reused id never inherits a stale pin.
    """
    try:
        if product is None:
            obj.__dict__.pop(PIN, None)
        else:
            obj.__dict__[PIN] = product
        return
    except AttributeError:
        pass
    except Exception:
        return
    try:
        weak = _weak_pins()
        if product is None:
            weak.pop(obj, None)
        else:
            weak[obj] = product
        return
    except TypeError:  # no weak references either
        pass
    if product is None:
        _BY_ID.pop(id(obj), None)
    else:
        if len(_BY_ID) >= _CACHE_MAX:
            _BY_ID.clear()
        _BY_ID[id(obj)] = product


_WEAK: Any = None
_BY_ID: Dict[int, Product] = {}


def _weak_pins() -> Any:
    global _WEAK
    if _WEAK is None:
        import weakref

        _WEAK = weakref.WeakKeyDictionary()
    return _WEAK


#: what :func:`holder` returns for the process default
DEFAULT = "default"


def holder(settings: Settings) -> Any:
    """A stable handle on who ``settings`` belong to, for objects that keep them.

    A product's :class:`Product` (its re-targets and removal reach the object), or
    :data:`DEFAULT` for the process default (likewise), or the settings themselves (a
    ``user_agent()`` scope: fixed).
    """
    st = _STATE
    if st is not None:
        if settings is st.default:
            return DEFAULT
        for product in st.products:
            if product.settings is settings:
                return product
    return settings


def held(handle: Any) -> Optional[Settings]:
    """The settings in force now for a :func:`holder` handle; None once gone."""
    st = _STATE
    if st is None:
        return None
    if handle is DEFAULT:
        return st.default
    if isinstance(handle, Product):
        return handle.settings
    settings: Optional[Settings] = handle
    return settings


def decide(settings: Settings, product: Optional[Product] = None) -> Any:
    """Make ``settings`` the answer for inner layers of this call (and ``product`` the
    pin in force, for objects they create); returns what :func:`undecide` resets."""
    token = _DECIDED.set(settings)
    if product is None:
        return token
    return (token, _PINNED.set(product))


def undecide(token: Any) -> None:
    if type(token) is tuple:
        _PINNED.reset(token[1])
        token = token[0]
    _DECIDED.reset(token)


class pinned:
    """Attribute what runs inside to ``product`` (no-op for None)."""

    __slots__ = ("product", "token")

    def __init__(self, product: Optional[Product]) -> None:
        self.product = product
        self.token: Any = None

    def __enter__(self) -> None:
        if self.product is not None:
            self.token = _PINNED.set(self.product)

    def __exit__(self, *exc: Any) -> None:
        if self.token is not None:
            _PINNED.reset(self.token)


class CustomerCode:
    """Body of ``ua_autotag.customer_code()``: what runs inside is the customer's code.

    A product (an orchestrator, an adapter, a provider) calling back into its user's code
    hands the attribution over: connections opened inside get what the customer's own
    code gets - the process default or nothing, or another product's value when the
    customer's code calls that product. Objects pinned to a product keep their product; a
    ``user_agent()`` scope still wins. A context manager (``with`` and ``async with``) and
    a decorator of sync and async functions; per thread and task (a contextvar).
    """

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens: list[Any] = []

    def _enter(self, frame: Any, giver: Optional[str]) -> CustomerCode:
        self.tokens.append(_PINNED.set(HandOver(frame, giver)))
        return self

    def __enter__(self) -> CustomerCode:
        frame = _getframe(1)
        return self._enter(frame, _module_name(frame.f_globals))

    def __exit__(self, *exc: Any) -> None:
        _PINNED.reset(self.tokens.pop())

    async def __aenter__(self) -> CustomerCode:
        frame = _getframe(1)
        return self._enter(frame, _module_name(frame.f_globals))

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__()

    def __call__(self, func: Any) -> Any:
        """Decorate ``func``: its body, and what it calls, run as customer code."""
        import functools
        import inspect

        giver = _module_name(getattr(func, "__globals__", None) or {"__name__": func.__module__})
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = _PINNED.set(HandOver(_getframe(0), giver))
                try:
                    return await func(*args, **kwargs)
                finally:
                    _PINNED.reset(token)

            return run_async

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            token = _PINNED.set(HandOver(_getframe(0), giver))
            try:
                return func(*args, **kwargs)
            finally:
                _PINNED.reset(token)

        return run


def customer_code() -> CustomerCode:
    """See :class:`CustomerCode` (``ua_autotag.customer_code``)."""
    return CustomerCode()


def scope(ua: UserAgent) -> Iterator[UserAgent]:
    """Body of ``ua_autotag.user_agent(...)``: tag connections opened inside with ``ua``.

    The options (mode, spans...) are those that would apply here without the scope,
    else the process default's, else the defaults. Validated on entry against the
    carriers those options use.
    """
    from ..settings import check_carriers

    st = _STATE
    base: Optional[Settings] = None
    if st is not None:
        base = current() or st.default
    settings = base.with_user_agent(ua) if base is not None else Settings(ua)
    check_carriers(ua, settings)
    token = _SCOPED.set(settings)
    try:
        yield ua
    finally:
        _SCOPED.reset(token)


def register(settings: Settings) -> Tuple[Optional[Settings], Tuple[Product, ...]]:
    """Install ``settings`` as the default (no packages) or a product; returns the old state.

    A package claimed by a product with another ``<isv>_<product>`` name is a
    :class:`ConfigurationError` naming both; the same name re-targets that product (its
    pinned objects follow). Returns (old default, old products) for rollback.
    """
    st = _STATE
    old_default = st.default if st is not None else None
    old_products = st.products if st is not None else ()
    if not settings.packages:
        _install(State(settings, old_products, st.handed if st is not None else ()))
        return old_default, old_products
    replaced = []
    for package in settings.packages:
        owner = st.by_package.get(package) if st is not None else None
        if owner is None or owner.settings is None:
            continue
        if owner.settings.user_agent.name != settings.user_agent.name:
            raise ConfigurationError(
                f"package {package!r} is already claimed by {owner.settings.user_agent} "
                f"(set at {owner.settings.origin or 'an earlier instrument()'}); "
                f"{settings.user_agent} cannot claim it too: each package belongs to one "
                "product"
            )
        if owner not in replaced:
            replaced.append(owner)
    if replaced:
        # re-target: the first matching product takes the new settings (pins follow it)
        keep = replaced[0]
        keep.settings = settings
        keep.packages = settings.packages
        for other in replaced[1:]:
            other.settings = None
        kept = tuple(p for p in old_products if p is keep or p not in replaced)
    else:
        kept = (*old_products, Product(settings))
    _install(State(old_default, kept, st.handed if st is not None else ()))
    return old_default, old_products


def restore(default: Optional[Settings], old: Tuple[Product, ...]) -> None:
    """Put back what :func:`register` returned (after a failed ``instrument()``)."""
    handed = _STATE.handed if _STATE is not None else ()
    _install(None if default is None and not old and not handed else State(default, old, handed))


def unregister(packages: Optional[Tuple[str, ...]] = None) -> None:
    """Remove the products owning ``packages``; all products and the default when None."""
    st = _STATE
    if st is None:
        return
    if packages is None:
        for product in st.products:
            product.settings = None
        _install(None)
        return
    gone = {st.by_package[p] for p in packages if p in st.by_package}
    for product in gone:
        product.settings = None
    kept = tuple(p for p in st.products if p not in gone)
    if st.default is None and not kept and not st.handed:
        _install(None)
    else:
        _install(State(st.default, kept, st.handed))


def accept(settings: Settings) -> None:
    """On a Spark executor: ``settings`` came with a function; the rule may answer them.

    They join the snapshot (so the engine keeps their integrations armed); which one is
    in force is :data:`HANDED` (or the scope), set around each call of the function.
    """
    st = _STATE
    if st is None:
        _install(State(None, (), (settings,)))
    elif settings not in st.handed:
        _install(State(st.default, st.products, (*st.handed, settings)))


def handed_scope() -> contextvars.ContextVar[Optional[Settings]]:
    """What an executor sets around a function whose value was a ``user_agent()`` scope
    where it was handed over: the scope (it wins over everything, as there)."""
    return _SCOPED
