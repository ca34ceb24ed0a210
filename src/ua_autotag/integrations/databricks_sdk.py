"""databricks-sdk: our token in the User-Agent of every request, at request time.

Where the SDK puts its header (0.162, verified in its source):

* ``_BaseClient.do`` and the Files API's ``_SingleAttemptApi._request`` send
  ``_BaseClient._user_agent_base``, a string computed *once*, in ``__init__``
  (``ApiClient`` passes ``cfg.user_agent``; a bare ``_BaseClient`` - the
  ``/.well-known/databricks-config`` probe of ``Config.__init__`` - takes the global
  ``useragent.to_string()``);
* the gRPC transport (``mixins._grpc_transport._channel_options``) and
  ``Config.sql_http_path`` read the ``Config.user_agent`` property.

So the tag cannot be applied at construction only: clients built before
``instrument()`` or before a re-target would keep a stale header. Instead
:func:`_setup` installs two class-level descriptors:

* ``_BaseClient._user_agent_base`` becomes a data descriptor: the SDK's own string
  is stored untouched in the instance ``__dict__`` (where clients built before
  ``instrument()`` already have it) and every *read* returns it with our token
  merged in for the value in force now (settings or ``ua_autotag.user_agent(...)``
  scope). Re-targeting therefore reaches existing clients at their next request.
* ``Config.user_agent`` returns the SDK's string with our token merged. The value is
  a ``str`` subclass remembering the untagged text, so when ``ApiClient`` hands it
  to ``_BaseClient`` the untagged text is what gets stored (no stale token after a
  re-target).

The SDK's global ``useragent.with_*`` functions are never called: they are
process-wide and cannot be undone. Everything the SDK and the application put in
the header (product/product_version, ``with_extra`` entries, ``auth/...``,
``upstream/...``) stays; :func:`ua_autotag.merge.http.merge_sdk_header` decides
per mode, so our token appears exactly once even when the application already
added it with ``with_extra``.

Spans: the SDK has no connection; its "connect" is building a client. One span per
SDK client: around ``WorkspaceClient.__init__`` / ``AccountClient.__init__`` (which
resolve the configuration - the ``/.well-known`` probe, credentials - and build one
``ApiClient``) or around a bare ``ApiClient.__init__``; the nested ``ApiClient``
reports into the outer span. ``db.system.name="databricks"``, ``server.address`` /
``server.port`` from the host, ``user_agent.original`` the header the client sends.
A client whose configuration fails (no credentials...) gives an ERROR span. Per
request we add no span, only the merge (cached): the OpenTelemetry ``requests``
instrumentation already covers requests.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

from ..engine.attribution import creator, for_object, pin
from ..merge.http import merge_sdk_header
from ..spec import Integration, Patch, Tag

logger = logging.getLogger("ua_autotag")

CARRIER = "http-user-agent"
_ATTR = "_user_agent_base"

_warned = threading.Event()


class TaggedUserAgent(str):
    """``Config.user_agent`` as we return it: tagged, remembering the SDK's own text."""

    untagged: str


def tag_header(raw: str, owner: Any) -> str:
    """``raw`` (an SDK User-Agent) with ``owner``'s value merged in; never raises.

    ``owner`` is the client or config sending it: its pinned product (the product
    whose code created it) decides, after a ``user_agent()`` scope.
    """
    if not isinstance(raw, str) or not raw:
        return raw
    settings = for_object(owner)
    if settings is None or "databricks_sdk" not in settings.active:
        return raw
    try:
        return merge_sdk_header(raw, settings.user_agent.render(CARRIER), settings.mode)
    except Exception as exc:  # never break a request: send the SDK's header as is
        if not _warned.is_set():
            _warned.set()
            logger.warning(
                "ua_autotag: databricks_sdk could not tag a User-Agent (%s); requests go "
                "ahead untagged",
                type(exc).__name__,
            )
        return raw


class _UserAgentBase:
    """Data descriptor for ``_BaseClient._user_agent_base``: store raw, read tagged.

    A data descriptor on the class wins over the instance ``__dict__``, so clients
    built before ``instrument()`` are covered too; removing it restores the SDK's
    plain attribute with the untouched value.
    """

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        try:
            raw = instance.__dict__[_ATTR]
        except KeyError:
            raise AttributeError(_ATTR) from None
        return tag_header(raw, instance)

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[_ATTR] = value.untagged if isinstance(value, TaggedUserAgent) else value
        product = creator()  # set in _BaseClient.__init__: pin to the creating product
        if product is not None:
            pin(instance, product)

    def __delete__(self, instance: Any) -> None:
        try:
            del instance.__dict__[_ATTR]
        except KeyError:
            raise AttributeError(_ATTR) from None


def _tagged_property(original: property) -> property:
    """``Config.user_agent`` returning a :class:`TaggedUserAgent`."""
    fget = original.fget
    assert fget is not None

    def user_agent(cfg: Any) -> Any:
        raw = fget(cfg)
        merged = tag_header(raw, cfg)
        if merged is raw or not isinstance(raw, str):
            return raw
        value = TaggedUserAgent(merged)
        value.untagged = raw
        return value

    user_agent.__doc__ = original.__doc__
    return property(user_agent, original.fset, original.fdel, original.__doc__)


def _setup() -> Callable[[], None]:
    """Replaces _BaseClient._user_agent_base and Config.user_agent with descriptors that
    add the value per request.

    Returns their undo (restores only what is ours).
    """
    from databricks.sdk._base_client import _BaseClient
    from databricks.sdk.config import Config

    original = Config.__dict__.get("user_agent")
    if not isinstance(original, property) or original.fget is None:
        raise AttributeError("databricks.sdk.config.Config.user_agent is not a property")
    if _ATTR in _BaseClient.__dict__:
        raise AttributeError(f"_BaseClient.{_ATTR} is already a class attribute")
    descriptor = _UserAgentBase()
    tagged = _tagged_property(original)
    setattr(_BaseClient, _ATTR, descriptor)
    setattr(Config, "user_agent", tagged)  # noqa: B010 - replacing a property

    def undo() -> None:
        if _BaseClient.__dict__.get(_ATTR) is descriptor:
            delattr(_BaseClient, _ATTR)
        if Config.__dict__.get("user_agent") is tagged:
            setattr(Config, "user_agent", original)  # noqa: B010

    return undo


def _config_of(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return kwargs["cfg"] if "cfg" in kwargs else args[0]


def _config_kw(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """``WorkspaceClient(config=cfg)``: a client built from a product's Config is its."""
    return kwargs.get("config")


def _cfg_arg(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return kwargs.get("cfg", args[0] if args else None)


@functools.lru_cache(maxsize=64)
def host_port(host: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
    """(address, port) of an SDK host (``https://x.cloud.databricks.com``), no path."""
    if not host:
        return None, None
    parts = urlsplit(host if "://" in host else f"https://{host}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return parts.hostname, port


def _target(
    instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Optional[str], Any]:
    return host_port(getattr(_config_of(args, kwargs), "host", None))


def _client_target(
    instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Optional[str], Any]:
    """``WorkspaceClient(host=...)`` / ``(config=...)``; else the inner ApiClient tells."""
    host = kwargs.get("host")
    if not isinstance(host, str):
        host = getattr(kwargs.get("config"), "host", None)
    return host_port(host if isinstance(host, str) else None)


def _note_client(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], result: Any
) -> Any:
    """Report the header this client sends (read through the descriptor) to the span."""
    inner = getattr(instance, "_api_client", None)
    if inner is not None:
        tag.note(getattr(inner, _ATTR, None))
    return result


INTEGRATION = Integration(
    name="databricks_sdk",
    # _BaseClient (with _user_agent_base) since 0.34 (before it, ApiClient held the
    # header); verified on 0.34 and 0.162 (``nox -s matrix``). If _BaseClient or the
    # Config.user_agent property is missing, setup fails and the integration reports
    # "failed" with the client untouched.
    supported=">=0.34,<1",
    system="databricks",
    patches=(
        Patch("databricks.sdk", "WorkspaceClient.__init__", span=True, target=_client_target),
        Patch("databricks.sdk", "AccountClient.__init__", span=True, target=_client_target),
        Patch(
            "databricks.sdk.core",
            "ApiClient.__init__",
            after=_note_client,
            span=True,
            target=_target,
        ),
        # pins (applied after the span wrappers on the same methods, so outermost): a
        # client or config created by a product's code sends that product's value
        Patch("databricks.sdk", "WorkspaceClient.__init__", pin="create", pin_from=_config_kw),
        Patch("databricks.sdk", "AccountClient.__init__", pin="create", pin_from=_config_kw),
        Patch("databricks.sdk.core", "ApiClient.__init__", pin="create", pin_from=_cfg_arg),
        Patch("databricks.sdk.config", "Config.__init__", pin="create"),
    ),
    setup=_setup,
)
