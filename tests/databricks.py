"""A local stand-in for a Databricks workspace, shared by the SDK and SQL connector tests."""

from __future__ import annotations

import os
from typing import Any, Dict

import pytest

from ua_autotag.verify.http_peer import HeaderRecorder

ME = "/api/2.0/preview/scim/v2/Me"


def workspace(http_peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch) -> HeaderRecorder:
    """``http_peer`` answering the SCIM Me call; no DATABRICKS_* (or cloud) configuration
    from the environment, so the SDK talks to this peer and nothing else."""
    for var in list(os.environ):
        if var.startswith(("DATABRICKS_", "ARM_", "GOOGLE_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", os.devnull)
    http_peer.route("GET", ME, (200, {"userName": "someone@example.com"}))
    return http_peer


def thrift(peer: HeaderRecorder, token: str, **extra: Any) -> Dict[str, Any]:
    """SQL connector arguments for Thrift over plain HTTP to ``peer`` (fails fast there)."""
    return {
        "server_hostname": peer.url,
        "http_path": "/x",
        "access_token": token,
        "_connection_uri": peer.url + "/x",
        "enable_telemetry": False,
        "_retry_stop_after_attempts_count": 1,
        **extra,
    }
