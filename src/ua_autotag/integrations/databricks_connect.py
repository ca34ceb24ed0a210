"""Databricks Connect (``databricks-connect`` >= 14.3): our value in every session's user agent.

Databricks Connect ships its own ``pyspark``; its sessions are Spark Connect sessions,
so the ``spark_connect`` integration (triggered by the same
``pyspark.sql.connect.client.core``) already tags those made from a connection
string or ``SPARK_REMOTE`` (``DatabricksSession.builder.remote("sc://...")``) and
opens their connect span.

Sessions made from Databricks SDK configuration (``.remote(host=..., token=...,
cluster_id=... | serverless=True)``, ``.serverless()``, ``.sdkConfig(cfg)``,
``.profile(...)``, the default ``Config()``) go through
``databricks.connect.auth.DatabricksChannelBuilder(config, user_agent, ...)``,
where ``user_agent`` is ``"<app's .userAgent(...) or SPARK_CONNECT_USER_AGENT>
databricks-session databricks-sdk/<v>"``. We merge ours into the app's part only,
keeping Databricks' own markers whatever the mode, so the value sent reads
exactly as if the app had called ``.userAgent("<app> <ours>")``:
``"<app> <ours> databricks-session databricks-sdk/<v> dbconnect/<v> spark/<v> ..."``.
The builder is marked so that the ``spark_connect`` getter leaves it alone.
The value is the one in force when the session is created (this runs inside
``getOrCreate()``/``create()``); a session Databricks Connect returns from its own
cache keeps the value it was created with.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

from ..merge import own_value
from ..merge.spark import merge_user_part
from ..spec import Integration, Patch, Tag
from .spark_connect import CARRIER, EXPORTED, MERGED

#: the first of Databricks Connect's own tokens after the app's part
MARKER = "databricks-session"


def split_app_part(value: str) -> Tuple[str, str]:
    """``"<app> databricks-session databricks-sdk/v"`` -> (app, " databricks-session ...")."""
    tokens = value.split(" ")
    if MARKER in tokens:
        index = tokens.index(MARKER)
        return " ".join(tokens[:index]), " " + " ".join(tokens[index:])
    return value, ""


def _merge(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Tuple[Any, Any]:
    """``DatabricksChannelBuilder.__init__(config, user_agent="", ...)``: merge ours in.

    Only a ``user_agent`` the caller passed is rewritten (DatabricksSession always
    passes it): adding an argument a version may not accept would break its call.
    The builder is then marked so that the ``spark_connect`` getter leaves it alone.
    """
    if len(args) > 1:
        current = args[1]
    elif "user_agent" in kwargs:
        current = kwargs["user_agent"]
    else:
        return args, kwargs  # the spark_connect getter tags it
    app, own = split_app_part(str(current or ""))
    if app and app == os.environ.get(EXPORTED):  # the launcher's export, not the app's
        app = own_value(os.environ, "SPARK_CONNECT_USER_AGENT") or ""
    merged = merge_user_part(app, tag.ua.render(CARRIER), tag.mode, own) + own
    if len(args) > 1:
        args = (args[0], merged, *args[2:])
    else:
        kwargs = {**kwargs, "user_agent": merged}
    setattr(instance, MERGED, True)
    return args, kwargs


INTEGRATION = Integration(
    name="databricks_connect",
    supported=">=14.3",
    system="spark",
    patches=(
        Patch(
            "databricks.connect.auth",
            "DatabricksChannelBuilder.__init__",
            before=_merge,
        ),
    ),
)
