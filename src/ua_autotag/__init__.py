"""ua-autotag: every connection a partner product opens to Databricks carries its User-Agent.

``import ua_autotag`` is the one-liner: with ``UA_AUTOTAG_USER_AGENT`` (or
``UA_AUTOTAG_ISV`` + ``UA_AUTOTAG_PRODUCT``) in the environment it sets the process
default at import. A library product calls
``ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", packages=[__name__])`` in its
own ``__init__.py`` and tags only the connections its own code opens. Either way only
an import hook is installed: wrapt, OpenTelemetry and the integration code load when a
client library is imported, never before.
"""

from __future__ import annotations

import os as _os

from .value import ConfigurationError, InvalidUserAgent, UserAgent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ContextManager, Iterable, Optional, Union

    from .engine import Status
    from .engine.attribution import CustomerCode
    from .ledger import Report
    from .settings import Settings

__version__ = "0.2.0"
__all__ = [
    "ConfigurationError",
    "InvalidUserAgent",
    "Settings",
    "UserAgent",
    "__version__",
    "customer_code",
    "instrument",
    "is_instrumented",
    "report",
    "status",
    "uninstrument",
    "user_agent",
]


def instrument(
    user_agent: Union[str, UserAgent, None] = None,
    *,
    isv: Optional[str] = None,
    product: Optional[str] = None,
    version: Optional[str] = None,
    version_from: Optional[str] = None,
    packages: Optional[Iterable[str]] = None,
    integrations: Optional[Iterable[str]] = None,
    disabled: Iterable[str] = (),
    mode: Optional[str] = None,
    spans: Optional[bool] = None,
    strict: Optional[bool] = None,
    rest_hosts: Optional[Iterable[str]] = None,
) -> Settings:
    """Tag the connections the supported clients open, from now on, in any import order.

    Without ``packages`` this sets the process default: every connection that no
    product claims. With ``packages=[__name__]`` (a library product) the value applies
    only to connections opened by code in those packages (a package covers its
    submodules) and by objects that code created (engines, pools, clients); several
    products coexist, and calling again for the same packages re-targets that product.

    Arguments left as None come from the ``UA_AUTOTAG_*`` environment (a product's
    value never does); explicit arguments win. ``version_from="acme-dateng"`` takes the
    version from that installed distribution. ``mode`` decides what happens to a value
    the caller already set: ``append`` (default), ``replace`` or ``keep``. Raises
    :class:`InvalidUserAgent` or :class:`ConfigurationError` for bad input (a package
    claimed by another product included).
    """
    options = dict(locals())  # exactly settings.OPTIONS, in order (a test checks)
    import sys

    from . import engine, settings

    frame = sys._getframe(1)
    origin = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    ours = str(frame.f_globals.get("__name__", "")).split(".")[0] == __name__
    resolved = settings.resolve(**options, origin=origin)
    if ours:  # the one-liner, the launcher, opentelemetry-instrument: the environment set it
        resolved.origin = resolved.sources.get("user_agent", "the environment")
    return engine.instrument(resolved)


def uninstrument(*, packages: Optional[Iterable[str]] = None) -> None:
    """Remove every patch (restoring originals by identity), or one product's registration.

    With ``packages`` only the products owning those packages are removed; the other
    products and the process default keep tagging.
    """
    import sys

    engine = sys.modules.get("ua_autotag.engine")
    if engine is not None:
        names = (
            None
            if packages is None
            else tuple([packages] if isinstance(packages, str) else packages)
        )
        engine.uninstrument(names)


def is_instrumented() -> bool:
    """Whether a process default or a product is registered."""
    import sys

    attribution = sys.modules.get("ua_autotag.engine.attribution")
    return attribution is not None and attribution.state() is not None


def status() -> Status:
    """Per integration: patched, partial, waiting, disabled, unsupported or failed.

    The result is a dict; its ``default`` and ``products`` attributes list who tags.
    """
    from . import engine

    return engine.status()


def user_agent(value: Union[str, UserAgent]) -> ContextManager[UserAgent]:
    """Tag connections opened inside the ``with`` block with ``value`` instead.

    Wins over products and the default. Scoped per thread / asyncio task (a
    contextvar); the value is validated on entry, against the carriers in use.
    """
    import contextlib

    from .engine import attribution

    return contextlib.contextmanager(attribution.scope)(UserAgent.coerce(value))


def report(
    format: Optional[str] = "text", *, file: Optional[str] = None, enabled: bool = True
) -> Report:
    """Report every connection to a Databricks or PostgreSQL endpoint from now on.

    Tagged ones come from the integrations; untagged ones (clients ua-autotag has no
    integration for) from Python's audit hooks, each with the ``file:line`` that opened
    it. The returned :class:`~ua_autotag.ledger.Report` has ``tagged`` / ``untagged``
    counts (a test suite can ``assert report.untagged == 0``), ``rows()``, ``text()`` and
    ``json()``. ``format`` ``"text"`` or ``"json"`` also prints it (stderr, or ``file``)
    when the process ends; ``None`` prints nothing. ``enabled=False`` stops recording.
    Costs nothing until called.
    """
    from . import ledger

    if format not in (None, "text", "json"):
        raise ConfigurationError(f"report format must be 'text' or 'json', got {format!r}")
    if not enabled:
        ledger.disable()
        return ledger.report_so_far()
    result = ledger.enable()
    if format is not None:
        ledger.print_at_exit(format, file)
    return result


def customer_code() -> CustomerCode:
    """Hand over to the customer's code: what runs inside is attributed as theirs.

    For a product that calls back into its user's code (an orchestrator running tasks,
    an adapter or provider running hooks)::

        with ua_autotag.customer_code():
            callback()

    or ``@ua_autotag.customer_code()`` on a sync or async function, or ``async with``.
    Connections opened inside get what the customer's own code would get: the process
    default or nothing. Objects pinned to a product (its engines, pools, clients) keep
    their product; a ``user_agent()`` scope still wins. Per thread and asyncio task.
    """
    from .engine import attribution

    return attribution.customer_code()


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module 'ua_autotag' has no attribute {name!r}")


def _is_the_command() -> bool:
    """Whether this process is the ``ua-autotag`` command (script or ``python -m``)."""
    import sys

    argv0 = _os.path.basename((getattr(sys, "argv", None) or [""])[0])
    orig = list(getattr(sys, "orig_argv", ()))
    run_module = orig[orig.index("-m") + 1] if "-m" in orig[:-1] else ""
    return argv0.startswith("ua-autotag") or run_module.split(".")[0] == "ua_autotag"


def _report_from_env() -> None:
    """``UA_AUTOTAG_REPORT=text|json`` (set by ``ua-autotag run --report``): report on."""
    from . import options

    env = _os.environ
    fmt = env.get(options.REPORT_VAR, "").strip().lower()
    if not fmt or _is_the_command():  # the command's children report, not the command
        return
    try:
        from . import ledger

        ledger.enable()
        ledger.print_at_exit(
            "json" if fmt == "json" else "text",
            None,
            env.get(options.REPORT_DIR_VAR) or None,
        )
    except Exception as exc:  # never kill the import
        import sys

        sys.stderr.write(f"ua-autotag: report not enabled: {type(exc).__name__}: {exc}\n")


def _activate_from_env() -> None:
    """The one-liner: set the process default from the environment, never killing the import."""
    from . import options

    env = _os.environ
    if not options.has_user_agent(env):
        return
    if _is_the_command():
        # the `ua-autotag` command itself (script or `python -m ua_autotag`): it validates
        # and reports the configuration its own way; its children are the ones tagged
        return
    from . import settings

    strict = options.is_true(env.get(options.VAR["strict"]))
    try:
        settings.apply_log_level()
        instrument()
    except ConfigurationError as exc:
        if strict:
            raise
        import logging

        logging.getLogger("ua_autotag").warning(
            "ua_autotag: not instrumenting, bad configuration in the environment: %s "
            "(set %s=true to make this an error)",
            exc,
            options.VAR["strict"],
        )


_report_from_env()
_activate_from_env()
