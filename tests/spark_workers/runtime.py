"""What a real local-mode Spark needs here: full pyspark (with its jars) and a Java runtime.

Nothing in here imports pyspark: the main ``tests`` session has ``pyspark-client``
installed (no JVM, no jars), and these tests must skip there without loading it.
Under the ``sparkworkers`` nox session (``UA_AUTOTAG_SPARK_WORKERS=1``) a missing
piece is a failure instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, NamedTuple, Optional

#: set by ``nox -s sparkworkers``: missing Spark or Java fails the run instead of skipping
REQUIRED = os.environ.get("UA_AUTOTAG_SPARK_WORKERS", "").strip().lower() in ("1", "true", "yes")


class SparkRuntime(NamedTuple):
    spark_home: Optional[str]
    java_home: Optional[str]
    #: why this machine cannot run local-mode Spark ("" when it can)
    problem: str


def _spark_home() -> tuple[Optional[str], str]:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None, "pyspark (full, with its JVM jars) is not installed"
    package = Path(next(iter(spec.submodule_search_locations)))
    # pip's full pyspark is its own SPARK_HOME: bin/spark-submit and jars/spark-core_*.jar
    if not any((package / "jars").glob("spark-core_*.jar")):
        return None, (
            f"pyspark at {package} has no Spark jars (pyspark-client / Spark Connect only); "
            "local-mode Python workers need the full pyspark"
        )
    if not (package / "bin" / "spark-submit").exists():
        return None, f"pyspark at {package} has no bin/spark-submit"
    return str(package), ""


def _java_home() -> tuple[Optional[str], str]:
    """``JAVA_HOME`` if it holds a java, else the one ``java`` on PATH resolves into
    (``readlink -f $(which java)`` minus ``bin/java``)."""
    env = os.environ.get("JAVA_HOME")
    if env and os.access(os.path.join(env, "bin", "java"), os.X_OK):
        home = env
    else:
        java = shutil.which("java")
        if java is None:
            return None, "no Java runtime: JAVA_HOME is not set and there is no java on PATH"
        home = str(Path(os.path.realpath(java)).parent.parent)
    try:
        subprocess.run(
            [os.path.join(home, "bin", "java"), "-version"],
            capture_output=True, check=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"java in {home} does not run: {exc}"
    return home, ""


def detect() -> SparkRuntime:
    spark_home, problem = _spark_home()
    if problem:
        return SparkRuntime(None, None, problem)
    java_home, problem = _java_home()
    return SparkRuntime(spark_home, java_home, problem)


def require(what: str) -> SparkRuntime:
    """The runtime for a test module of ``what``; skips the module where Spark cannot run
    (the main ``tests`` session), fails it under ``nox -s sparkworkers``."""
    import pytest

    runtime = detect()
    if runtime.problem:
        if REQUIRED:
            pytest.fail(
                f"UA_AUTOTAG_SPARK_WORKERS is set but Spark cannot run: {runtime.problem}",
                pytrace=False,
            )
        pytest.skip(
            f"{what} need full pyspark and Java ({runtime.problem}); "
            "run them with `nox -s sparkworkers`",
            allow_module_level=True,
        )
    return runtime


def child_env(runtime: SparkRuntime, **extra: str) -> Dict[str, str]:
    """The environment for a Spark driver subprocess (and, through the JVM, its Python
    workers): no ua-autotag or libpq-name setting inherited from the test run, the
    detected SPARK_HOME and JAVA_HOME, loopback networking, plus ``extra``."""
    assert runtime.spark_home and runtime.java_home, runtime.problem
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UA_AUTOTAG_", "PYSPARK_", "SPARK_"))
        and k not in ("PGAPPNAME", "PYTHONPATH", "PYTHONSTARTUP")
    }
    env.update(
        SPARK_HOME=runtime.spark_home,
        JAVA_HOME=runtime.java_home,
        SPARK_LOCAL_IP="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
