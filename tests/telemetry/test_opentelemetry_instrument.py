"""A real program under ``opentelemetry-instrument``: our entry point tags, and its span exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

UA = "AcmePartner_DatEngProduct/3.5"

SCRIPT = f"""
import psycopg
with psycopg.connect({pg.DSN!r}) as conn:
    print("APPNAME=" + conn.execute({pg.APPLICATION_NAME_SQL!r}).fetchone()[0], flush=True)
"""


def _launcher() -> str:
    path = Path(sys.executable).with_name("opentelemetry-instrument")
    found = str(path) if path.exists() else shutil.which("opentelemetry-instrument")
    assert found, "opentelemetry-instrument is part of the [test] extra"
    return found


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("UA_AUTOTAG_", "OTEL_"))}
    return subprocess.run(
        [
            _launcher(),
            "--traces_exporter",
            "console",
            "--metrics_exporter",
            "none",
            "--logs_exporter",
            "none",
            sys.executable,
            str(script),
        ],
        env={**base, "PGAPPNAME": "", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def _spans(stdout: str) -> list[dict]:
    """The console exporter prints one JSON object per span; pick them out of stdout."""
    spans, depth, buf = [], 0, []
    for line in stdout.splitlines():
        if line.startswith("{") and depth == 0:
            buf = []
        if depth or line.startswith("{"):
            buf.append(line)
            depth += line.count("{") - line.count("}")
            if depth == 0:
                spans.append(json.loads("\n".join(buf)))
    return spans


def test_entry_point_tags_and_exports_a_span(tmp_path: Path, pg_dsn: str) -> None:
    result = _run(tmp_path, UA_AUTOTAG_USER_AGENT=UA)
    assert result.returncode == 0, result.stderr
    assert f"APPNAME={UA}" in result.stdout
    ours = [
        s
        for s in _spans(result.stdout)
        if s.get("attributes", {}).get("ua_autotag.integration") == "psycopg"
    ]
    assert len(ours) == 1, result.stdout
    assert ours[0]["kind"] == "SpanKind.CLIENT"
    assert ours[0]["attributes"]["user_agent.original"] == UA
    assert ours[0]["attributes"]["db.system.name"] == "postgresql"


def test_otel_disabled_instrumentations_switches_it_off(tmp_path: Path, pg_dsn: str) -> None:
    result = _run(
        tmp_path, UA_AUTOTAG_USER_AGENT=UA, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="ua_autotag"
    )
    assert result.returncode == 0, result.stderr
    assert "APPNAME=" in result.stdout and UA not in result.stdout


@pytest.mark.parametrize("value", ["", None])
def test_without_configuration_the_entry_point_does_nothing(
    tmp_path: Path, pg_dsn: str, value: str | None
) -> None:
    env = {} if value is None else {"UA_AUTOTAG_USER_AGENT": value}
    result = _run(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "APPNAME=" in result.stdout and "ua_autotag" not in result.stdout
