"""A real Spark cluster on this machine: a standalone master and worker, a Spark Connect server.

Each daemon is started as a cluster's daemons are — its own JVM from the full pyspark
package (its own SPARK_HOME: ``bin/spark-class``, ``bin/spark-submit``), with a clean
environment (``env -i``: only PATH, HOME, JAVA_HOME, SPARK_HOME and loopback settings):
nothing of the test run, the launcher or ua-autotag reaches the executors through it. The
standalone worker starts executors for the driver programs the tests run; the Spark Connect
server (``SparkConnectServer``, bundled with pyspark 4) runs its own executors (``local[2]``)
and their Python workers. Python worker reuse is off everywhere, so every task meets a
fresh Python worker that has imported nothing of a product or of ua-autotag.

Ports are free ones picked by binding to port 0. The daemons run in their own process
groups and are ended by those ids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.spark_workers.runtime import SparkRuntime

#: a short-lived JVM: C1 only, serial GC (starts and runs small jobs faster)
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(runtime: SparkRuntime, home: Path, **extra: str) -> Dict[str, str]:
    """What a daemon gets: ``env -i`` plus the few variables Spark itself needs."""
    assert runtime.spark_home and runtime.java_home, runtime.problem
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "JAVA_HOME": runtime.java_home,
        "SPARK_HOME": runtime.spark_home,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(home / "logs"),
        "SPARK_PID_DIR": str(home),
        "SPARK_DAEMON_MEMORY": "384m",
        "SPARK_DAEMON_JAVA_OPTS": FAST_JVM,
    }
    env.update(extra)
    return env


class Daemon:
    """One JVM daemon: its process, its log file."""

    def __init__(self, name: str, args: List[str], env: Dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=env["HOME"],
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, *, port: Optional[int] = None, line: Optional[str] = None,
             timeout: float = 180) -> None:
        """Until ``port`` accepts connections and ``line`` is in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited {self.proc.returncode}:\n{self.text()[-6000:]}"
                )
            ready = line is None or line in self.text()
            if ready and port is not None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    ready = False
            if ready:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.text()[-6000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this daemon leads
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def _spark(runtime: SparkRuntime, script: str) -> str:
    assert runtime.spark_home
    return str(Path(runtime.spark_home) / "bin" / script)


class Standalone:
    """A standalone master and one worker (6 cores: three applications of 2 at once),
    started with clean environments."""

    def __init__(self, runtime: SparkRuntime, home: Path) -> None:
        (home / "logs").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        env = clean_env(runtime, home)
        self.master = Daemon(
            "master",
            [_spark(runtime, "spark-class"), "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(free_port())],
            env, home / "master.log",
        )
        self.worker: Optional[Daemon] = None
        self.runtime, self.home = runtime, home

    def start_worker(self) -> None:
        self.master.wait(port=self.port)
        work = self.home / "work"
        work.mkdir(exist_ok=True)
        self.worker = Daemon(
            "worker",
            [_spark(self.runtime, "spark-class"), "org.apache.spark.deploy.worker.Worker",
             self.url, "--host", "127.0.0.1", "--port", str(free_port()),
             "--webui-port", str(free_port()), "--cores", "6", "--memory", "4g",
             "--work-dir", str(work)],
            clean_env(self.runtime, self.home), self.home / "worker.log",
        )

    def wait(self) -> None:
        assert self.worker is not None
        self.worker.wait(line="Successfully registered with master")

    def stop(self) -> None:
        for daemon in (self.worker, self.master):
            if daemon is not None:
                daemon.stop()


class ConnectServer:
    """``SparkConnectServer`` (local executors) whose Python workers run ``python``."""

    def __init__(self, runtime: SparkRuntime, home: Path, python: str) -> None:
        (home / "logs").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        confs = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.python.worker.reuse": "false",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.extraJavaOptions": FAST_JVM,
        }
        args = [_spark(runtime, "spark-submit"), "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--master", "local[2]", "--driver-memory", "1g"]
        for key, value in confs.items():
            args += ["--conf", f"{key}={value}"]
        # PYSPARK_PYTHON: the Python its workers run (Spark's own setting; nothing of ours)
        env = clean_env(runtime, home, PYSPARK_PYTHON=python)
        del env["SPARK_DAEMON_MEMORY"]  # spark-submit would take it for the driver's heap
        self.daemon = Daemon("connect server", [*args, "spark-internal"], env,
                             home / "connect.log")

    def wait(self) -> None:
        self.daemon.wait(port=self.port)

    def stop(self) -> None:
        self.daemon.stop()
