"""Helpers for the CLI tests: every test drives the real ``ua-autotag`` script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

UA = "AcmePartner_DatEngProduct/3.5"

#: the console script installed next to the interpreter running the tests
SCRIPT = str(Path(sys.executable).with_name("ua-autotag"))


def clean_env(**extra: str) -> Dict[str, str]:
    """os.environ without any ua-autotag / libpq-name / Spark UA setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UA_AUTOTAG_")
        and k not in ("PGAPPNAME", "SPARK_CONNECT_USER_AGENT", "PYTHONPATH")
    }
    env.update(extra)
    return env


def cli(
    *args: str,
    env: Optional[Dict[str, str]] = None,
    input: Optional[str] = None,
    cwd: Any = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run ``ua-autotag ARGS`` and capture everything."""
    return subprocess.run(
        [SCRIPT, *args],
        env=clean_env() if env is None else env,
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert the run failed with exactly one stderr line and no traceback; return it."""
    assert proc.returncode != 0, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="session")
def script() -> str:
    assert os.access(SCRIPT, os.X_OK), f"the ua-autotag console script is not at {SCRIPT}"
    return SCRIPT
