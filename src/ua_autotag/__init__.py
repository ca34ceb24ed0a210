"""ua-autotag: every connection a partner product opens to Databricks carries its User-Agent.

``import ua_autotag`` is the one-liner: with ``UA_AUTOTAG_USER_AGENT`` (or
``UA_AUTOTAG_ISV`` + ``UA_AUTOTAG_PRODUCT``) in the environment it instruments at
import; without, importing only defines this API and loads nothing else (no wrapt,
no OpenTelemetry, no client library, not even ``logging`` or ``typing``).
"""

from __future__ import annotations

import os as _os

from .useragent import ConfigurationError, InvalidUserAgent, UserAgent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ContextManager, Dict, Iterable, Optional, Union

    from .config import Settings
    from .registry import IntegrationStatus

__version__ = "0.1.0"
__all__ = [
    "ConfigurationError",
    "InvalidUserAgent",
    "Settings",
    "UserAgent",
    "__version__",
    "instrument",
    "is_instrumented",
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
    integrations: Optional[Iterable[str]] = None,
    disabled: Iterable[str] = (),
    mode: Optional[str] = None,
    spans: Optional[bool] = None,
    strict: Optional[bool] = None,
    rest_hosts: Optional[Iterable[str]] = None,
) -> Settings:
    """Tag every connection the supported clients open, from now on, in any import order.

    Arguments left as None come from the ``UA_AUTOTAG_*`` environment; explicit
    arguments win. ``version_from="acme-dateng"`` takes the version from that
    installed distribution. ``mode`` decides what happens to a value the caller
    already set: ``append`` (default), ``replace`` or ``keep``. Calling it again
    re-targets the patches already applied; nothing is wrapped twice. Raises
    :class:`InvalidUserAgent` or :class:`ConfigurationError` for bad input.
    """
    from . import config, registry

    settings = config.resolve(
        user_agent,
        isv=isv,
        product=product,
        version=version,
        version_from=version_from,
        integrations=integrations,
        disabled=disabled,
        mode=mode,
        spans=spans,
        strict=strict,
        rest_hosts=rest_hosts,
    )
    return registry.instrument(settings)


def uninstrument() -> None:
    """Remove every patch, restoring each original object by identity."""
    import sys

    if "ua_autotag.registry" in sys.modules:
        sys.modules["ua_autotag.registry"].uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in force."""
    import sys

    config = sys.modules.get("ua_autotag.config")
    return config is not None and config.active() is not None


def status() -> Dict[str, IntegrationStatus]:
    """Per integration: patched (with version), waiting, disabled, unsupported or failed."""
    from . import registry

    return registry.status()


def user_agent(value: Union[str, UserAgent]) -> ContextManager[UserAgent]:
    """Tag connections opened inside the ``with`` block with ``value`` instead.

    For processes hosting several products. Scoped per thread / asyncio task (a
    contextvar); the value is validated on entry, against the carriers in use.
    """
    from . import config

    return config.scoped(value)


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from .config import Settings

        return Settings
    raise AttributeError(f"module 'ua_autotag' has no attribute {name!r}")


_TRUE = ("1", "true", "yes", "on")


def _activate_from_env() -> None:
    """The one-liner: instrument from the environment, never killing the import."""
    env = _os.environ
    if not (
        env.get("UA_AUTOTAG_USER_AGENT")
        or env.get("UA_AUTOTAG_ISV")
        or env.get("UA_AUTOTAG_PRODUCT")
    ):
        return
    import sys

    if _os.path.basename((getattr(sys, "argv", None) or [""])[0]).startswith("ua-autotag"):
        # the `ua-autotag` console script itself: it validates and reports the
        # configuration its own way, and its children (not itself) are to be tagged
        return
    import logging

    from . import config

    strict = env.get("UA_AUTOTAG_STRICT", "").strip().lower() in _TRUE
    try:
        config.apply_log_level()
        instrument()
    except ConfigurationError as exc:
        if strict:
            raise
        logging.getLogger("ua_autotag").warning(
            "ua_autotag: not instrumenting, bad configuration in the environment: %s "
            "(set UA_AUTOTAG_STRICT=true to make this an error)",
            exc,
        )


_activate_from_env()
