"""Coexistence with other patchers of the same clients, both orders, either side removed.

Each case runs in a fresh interpreter (patchers are process-global and the OTel tracer
provider can be set once). The server's pg_stat_activity is the judge of the tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

UA = "AcmePartner_DatEngProduct/3.5"
APP = Path(__file__).with_name("coexist_app.py")


@pytest.mark.parametrize("order", ["ours-first", "ours-last"])
@pytest.mark.parametrize("patcher", ["otel-psycopg", "otel-dbapi", "otel-sqlalchemy", "ddtrace"])
def test_tag_and_their_spans_survive(pg_dsn: str, patcher: str, order: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UA_AUTOTAG_", "OTEL_"))}
    env.update(
        PGAPPNAME="",
        PYTHONPATH=str(Path(__file__).parents[2]),
        DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
        DD_REMOTE_CONFIGURATION_ENABLED="false",
        DD_TRACE_STARTUP_LOGS="false",
    )
    result = subprocess.run(
        [sys.executable, str(APP), patcher, order, pg_dsn],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stages = json.loads(result.stdout.strip().splitlines()[-1])
    # both active: our tag reached the server, exactly once; both sides made their spans
    assert stages["both"]["app"] == UA
    assert stages["both"]["ours"] == 1
    assert stages["both"]["theirs"] >= 1
    # the other side uninstrumented: our tag still reaches the server
    assert stages["other_off"]["app"] == UA
    # ua-autotag uninstrumented: untagged, and the other patcher still works
    assert stages["ours_off"]["app"] != UA and UA not in stages["ours_off"]["app"]
    assert stages["ours_off"]["ours"] == 0
    assert stages["ours_off"]["theirs"] >= 1
