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
from typing import Any, Dict, List, Optional, Tuple

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
    targets["python -c 'import ua_autotag' (env set)"] = (
        "<= bare + 5 ms (issue 16 §1)", lambda r: r.diff_median <= 5 * ms)
    os.environ.pop("UA_AUTOTAG_USER_AGENT", None)
    rows = compare("launcher", "start-up of `-c pass`", samples, "python -c pass", 1,
                   targets, notes)
    out.emit(rows, "== launcher: process start-up, wall clock")
    cli = tool("ua-autotag")
    if cli is not None:
        imports = launcher_imports(cli)
        out.extra["launcher_imports"] = imports
        print("== launcher: what the `ua-autotag run` process itself imports (-X importtime, "
              "child is /bin/true), top cumulative:", flush=True)
        for line in imports["top"]:
            print(f"  {line}", flush=True)
        print(f"  {imports['count']} modules; of the heavy ones: "
              f"{', '.join(imports['heavy']) or 'none'}", flush=True)
        for row in rows:
            if row.variant.startswith("ua-autotag run"):
                row.note = (f"launcher process imports {imports['count']} modules (top "
                            f"cumulative: {'; '.join(imports['top'][:4])}); heavy: "
                            f"{', '.join(imports['heavy']) or 'none'}")
    out.save()


HEAVY = ("wrapt", "logging", "asyncio", "importlib.metadata", "packaging", "opentelemetry",
         "argparse", "json", "subprocess", "typing", "re")


def launcher_imports(cli: str) -> Dict[str, Any]:
    """The launcher's own imports: ``-X importtime`` with a non-Python child (``true``).

    The console script's interpreter prints every import it makes to stderr; the child
    (``/bin/true``) prints nothing, so this is the launcher process alone.
    """
    env = clean_env(PYTHONPROFILEIMPORTTIME="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    true = shutil.which("true") or "/bin/true"
    done = subprocess.run([cli, "run", "--user-agent", UA, true], env=env,
                          capture_output=True, text=True, check=False)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative, name = line.split(":", 1)[1].split("|")
        rows.append((int(cumulative), name.rstrip()))
    names = [n.strip() for _, n in rows]
    # top-level imports only (nested ones are indented under their importer)
    top = sorted((r for r in rows if not r[1].startswith("  ")), reverse=True)[:8]
    heavy = [h for h in HEAVY if h in names]
    return {"count": len(rows), "top": [f"{n.strip()} {c / 1000:.1f} ms" for c, n in top],
            "heavy": heavy, "returncode": done.returncode}


if __name__ == "__main__":
    main()
