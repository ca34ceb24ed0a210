"""Spark Connect (pyspark / pyspark-client >= 3.5): our value in every request's user agent.

The Spark Connect client puts its user agent in the protobuf field ``client_type``
of every request (Config, AnalyzePlan, ExecutePlan, ReleaseExecute, ...), read each
time from the ``ChannelBuilder.userAgent`` property:
``"<user part> spark/<v> os/<os> python/<v>"``, the user part being the
``user_agent`` parameter (``sc://h:p/;user_agent=...`` or
``ChannelBuilder(params=...)``), else ``SPARK_CONNECT_USER_AGENT``, else
``_SPARK_CONNECT_PYTHON``. Every way of making a session (``builder.remote``,
``SPARK_REMOTE``, ``builder.channelBuilder(...)`` with a ``ChannelBuilder`` or
``DefaultChannelBuilder`` subclass, sessions made before ``instrument()``) reads
that property, so its getter is where we merge ours into the user part:

* ``append``: ``"<caller's part> <ours> spark/..."`` (ours once); pyspark's default
  ``_SPARK_CONNECT_PYTHON`` is not a caller's value: it gives way to ours, exactly
  as if the application had set ``user_agent`` itself;
* ``replace``: ``"<ours> spark/..."``; ``keep``: a caller's value is left alone.

The scoped override (``ua_autotag.user_agent(...)``) in force when the session is
created wins for the whole session: ``SparkConnectClient.__init__`` records it on
the session's channel builder, and the getter uses it for every later request,
whatever thread or context sends them (a session made before ``instrument()``
uses the configured value). That constructor also opens the one connect span per
session (``db.system.name`` ``spark``; Spark Connect sends nothing until the first
action, so the span covers creating the client).

pyspark leaves ``client_type`` empty on its artifact requests (``AddArtifacts``,
``ArtifactStatus``): sessions created after ``instrument()`` get an artifact stub
that fills an empty ``client_type`` with the same value (never touching a set one).

Limit: the client refuses a user part over 2048 characters after URL-quoting. Our
value is at most 128 characters, so it always fits alone (checked at
configuration time for the ``spark_connect`` carrier); if appending it to a very
long caller's value would not fit, the caller's value is sent unchanged and a
warning is logged once (never cut, never an error in the application's call).
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, Optional, Tuple

from .. import telemetry
from ..engine import attribution
from ..merge import own_value
from ..merge.spark import DEFAULT_USER_AGENT, merge_result
from ..settings import Settings
from ..spec import Integration, Patch, Tag

_CORE = "pyspark.sql.connect.client.core"
CARRIER = "spark_connect"

#: on a channel builder: the settings in force when its session was created
CAPTURED = "_ua_autotag_user_agent"
#: on a channel builder: an integration already merged ours into its parameters
#: (Databricks Connect does it where it can tell the app's part from its own)
MERGED = "_ua_autotag_merged"


#: what the launcher exported as SPARK_CONNECT_USER_AGENT (ua_autotag.merge.exported)
EXPORTED = "UA_AUTOTAG_EXPORTED_SPARK_CONNECT_USER_AGENT"


def _params(builder: Any) -> Any:
    params = getattr(builder, "_params", None)
    if params is None:  # pyspark 3.5 keeps the connection parameters in ``params``
        params = getattr(builder, "params", None)
    return params or {}


def _own(builder: Any, name: str) -> Any:
    """``builder``'s own attribute ``name`` (None if unset), without a failed lookup's cost."""
    try:
        return builder.__dict__.get(name)
    except AttributeError:  # a slotted builder
        return getattr(builder, name, None)


def _tag_user_agent(tag: Tag, builder: Any, args: Any, kwargs: Any, result: str) -> str:
    """``ChannelBuilder.userAgent`` getter: merge ours into the user part of ``result``.

    The user part is what the client used (parameter > ``SPARK_CONNECT_USER_AGENT`` >
    default); the caller's own part is that, unless it is the value the launcher
    exported (with the process default in it): then the one the caller had before.
    """
    if _own(builder, MERGED):
        return result
    value = _params(builder).get("user_agent")
    if value is not None:
        user = own = str(value)
    else:
        user = str(os.environ.get("SPARK_CONNECT_USER_AGENT", DEFAULT_USER_AGENT))
        own = user if _exported(tag.settings) != user else _before_launcher()
    return merge_result(result, user, own, tag.value, tag.mode)


def _exported(settings: Settings) -> Optional[str]:
    """What the launcher exported as ``SPARK_CONNECT_USER_AGENT``: read once per settings
    (the launcher sets it before the process starts; per request it is a cache hit)."""
    try:
        exported: Optional[str] = settings.cache[EXPORTED]
    except KeyError:
        exported = settings.cache[EXPORTED] = os.environ.get(EXPORTED)
    return exported


def _before_launcher() -> str:
    own = own_value(os.environ, "SPARK_CONNECT_USER_AGENT")
    return DEFAULT_USER_AGENT if own is None else own


def target_of(builder: Any) -> Tuple[Optional[str], Optional[int]]:
    """(host, port) a channel builder connects to; never its URL (it may hold a token)."""
    host = getattr(builder, "_host", None)
    port = getattr(builder, "_port", None)
    if host is None:
        url = getattr(builder, "url", None)  # DatabricksChannelBuilder: the workspace URL
        host = getattr(url, "hostname", None)
        if host is not None:
            port = getattr(url, "port", None) or 443
    if isinstance(host, str):
        host = host.strip("[]")
    return host, port


def _target(client: Any, args: Any, kwargs: Any) -> Tuple[Optional[str], Optional[int]]:
    """Target of ``SparkConnectClient(connection, ...)`` before it runs (for failures)."""
    connection = args[0] if args else kwargs.get("connection")
    if isinstance(connection, str):
        if not connection.startswith("sc://"):
            return None, None
        url = urllib.parse.urlparse("http" + connection[2:])
        return url.hostname, url.port
    return target_of(connection)


def _on_session(tag: Tag, client: Any, args: Any, kwargs: Any, result: Any) -> Any:
    """``SparkConnectClient.__init__``: pin the value in force now to this session."""
    builder = client._builder
    setattr(builder, CAPTURED, attribution.holder(tag.settings))
    _fill_artifact_requests(client)
    if telemetry.current() is None:
        return result  # what follows only reports to the connect span
    address, port = target_of(builder)
    try:
        sent: Optional[str] = builder.userAgent
    except Exception:  # the client's own error surfaces at its first request, not here
        sent = None
    telemetry.note(sent, address, port)
    return result


class _FillingStub:
    """The artifact manager's stub, filling an empty ``client_type`` on its requests.

    pyspark leaves ``client_type`` empty on ``AddArtifacts`` / ``ArtifactStatus``;
    every other request already carries ``builder.userAgent``. A set value is never
    touched, and nothing is filled once the integration is off. This proxies the
    stub (plain Python) rather than intercepting the gRPC channel: an intercepted
    channel makes grpc crash the interpreter when it is used after being closed.
    """

    __slots__ = ("_builder", "_stub")

    def __init__(self, stub: Any, builder: Any) -> None:
        self._stub = stub
        self._builder = builder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def _fill(self, request: Any) -> Any:
        try:
            if not getattr(request, "client_type", True):
                settings = session_settings(self._builder)
                if settings is not None and "spark_connect" in settings.active:
                    request.client_type = self._builder.userAgent
        except Exception:  # never break the request: it goes as the client built it
            pass
        return request

    def AddArtifacts(self, requests: Any, *args: Any, **kwargs: Any) -> Any:
        return self._stub.AddArtifacts((self._fill(r) for r in requests), *args, **kwargs)

    def ArtifactStatus(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._stub.ArtifactStatus(self._fill(request), *args, **kwargs)


def _fill_artifact_requests(client: Any) -> None:
    """Give the session's artifact manager a stub that fills ``client_type``."""
    manager: Any = getattr(client, "_artifact_manager", None)
    stub = getattr(manager, "_stub", None)
    if manager is not None and stub is not None and not isinstance(stub, _FillingStub):
        manager._stub = _FillingStub(stub, client._builder)


def session_settings(builder: Any) -> Optional[Settings]:
    """The settings of the session ``builder`` serves: pinned at its creation, else now's.

    The session keeps who it belongs to (its product, the default or a scope's value),
    so a re-target reaches it; once its product is removed it follows the rule now.
    """
    captured = _own(builder, CAPTURED)
    if captured is not None:
        settings = attribution.held(captured)
        if settings is not None:
            return settings
    return attribution.current()


INTEGRATION = Integration(
    name="spark_connect",
    supported=">=3.5",
    system="spark",
    patches=(
        Patch(
            _CORE,
            "ChannelBuilder.userAgent",
            after=_tag_user_agent,
            essential=True,
            settings=session_settings,
            leaf=True,  # a property getter: nothing connects inside it
        ),
        Patch(_CORE, "SparkConnectClient.__init__", after=_on_session, span=True, target=_target),
    ),
)
