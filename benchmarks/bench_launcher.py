"""4. Launcher start-up: a program that imports no client, under each launcher.

Wall-clock of the whole child process (``subprocess.run``), interleaved in shuffled
order, same run:

* ``python -c pass``                           bare interpreter (the baseline)
* ``UA_AUTOTAG_USER_AGENT=... python -c "import ua_autotag"``  the one-liner
* ``python -c "import wrapt"``                 context: what importing wrapt costs
* ``ua-autotag run --user-agent UA python -c pass``  our launcher (target <= bare + 40 ms)
* the same with ``UA_AUTOTAG_USER_AGENT`` in the environment instead of the option
* ``opentelemetry-instrument python -c pass``  OpenTelemetry's launcher (anchor)
* ``ddtrace-run python -c pass``               ddtrace's launcher (anchor)

Each launcher is looked up next to this interpreter (the bench virtualenv); a missing
one is skipped with the reason. The anchors run with exporters off
(``OTEL_*_EXPORTER=none``; ddtrace's telemetry and remote configuration off, agent
URL on a closed local port) so that no network wait lands in a start-up number.
``PYTHONDONTWRITEBYTECODE`` is unset for every child (warm-up run first).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from harness import UA, Output, arguments, clean_env, compare

BIN = Path(sys.executable).parent


def tool(name: str) -> Optional[str]:
    path = BIN / name
    if path.exists():
        return str(path)
    return shutil.which(name)


def commands(out: Output) -> Dict[str, Tuple[List[str], Dict[str, str]]]:
    py = sys.executable
    base = clean_env()
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    ours = {**base, "UA_AUTOTAG_USER_AGENT": UA}
    found: Dict[str, Tuple[List[str], Dict[str, str]]] = {
        "python -c pass": ([py, "-c", "pass"], base),
        "python -c 'import ua_autotag' (env set)": ([py, "-c", "import ua_autotag"], ours),
        "python -c 'import wrapt' (context)": ([py, "-c", "import wrapt"], base),
    }
    cli = tool("ua-autotag")
    reason = None
    if cli is None:
        reason = "the ua-autotag console script is not installed"
    else:
        probe = subprocess.run([cli, "run", "--help"], capture_output=True, text=True,
                               env=ours, check=False)
        if probe.returncode != 0:
            reason = f"`ua-autotag run --help` failed: {probe.stderr.strip()[-200:]}"
    if reason is None:
        found["ua-autotag run python -c pass"] = (
            [str(cli), "run", "--user-agent", UA, py, "-c", "pass"], base)
        found["ua-autotag run python -c pass (UA in env)"] = (
            [str(cli), "run", py, "-c", "pass"], ours)
    else:
        out.skip("launcher", "ua-autotag run python -c pass", reason)
    otel = tool("opentelemetry-instrument")
    if otel is None:
        out.skip("launcher", "opentelemetry-instrument", "not installed (run `nox -s bench`)")
    else:
        env = {**base, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
               "OTEL_LOGS_EXPORTER": "none"}
        found["opentelemetry-instrument python -c pass"] = ([otel, py, "-c", "pass"], env)
    dd = tool("ddtrace-run")
    if dd is None:
        out.skip("launcher", "ddtrace-run", "not installed (run `nox -s bench`)")
    else:
        env = {**base, "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
               "DD_REMOTE_CONFIGURATION_ENABLED": "false", "DD_TRACE_STARTUP_LOGS": "false",
               "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"}
        found["ddtrace-run python -c pass"] = ([dd, py, "-c", "pass"], env)
    return found


def wall(argv: List[str], env: Dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode()[-300:]}")
    return elapsed


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    rounds = 3 if args.quick else 20
    cmds = commands(out)
    for name, (argv, env) in list(cmds.items()):
        try:
            wall(argv, env)  # warm-up: .pyc files, page cache
        except RuntimeError as exc:
            out.skip("launcher", name, str(exc))
            del cmds[name]
    rng = random.Random(4)
    names = list(cmds)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            samples[name].append(wall(*cmds[name]))
    ms = 1e-3
    limit = ("<= bare + 40 ms", lambda r: r.diff_median <= 40 * ms)
    targets = {
        "ua-autotag run python -c pass": limit,
        "ua-autotag run python -c pass (UA in env)": limit,
    }
    notes = {
        "python -c 'import ua_autotag' (env set)": "the one-liner: instruments from the "
        "environment at import (wrapt + registry, no client imported)",
        "python -c 'import wrapt' (context)": "the floor of any wrapt-based activation "
        "(wrapt 2.x imports asyncio and importlib.metadata)",
    }
    os.environ.pop("UA_AUTOTAG_USER_AGENT", None)
    out.emit(compare("launcher", "start-up of `-c pass`", samples, "python -c pass", 1,
                     targets, notes), "== launcher: process start-up, wall clock")
    out.save()


if __name__ == "__main__":
    main()
