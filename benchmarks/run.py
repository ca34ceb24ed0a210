"""Run the whole benchmark suite and write results/latest.{json,txt,pyperf.json}.

``nox -s bench`` calls this (``nox -s bench -- --quick`` for a smoke run). Each
benchmark script runs in its own fresh process (the OpenTelemetry SDK variants need
a process of their own: a tracer provider can be set once per process); their rows
are gathered into one JSON file with the machine's description, a text table, and
a pyperf suite (``python -m pyperf stats/compare_to results/latest.pyperf.json``).

Exit status: 0 when every script ran (missed targets are reported, not failures),
1 when a script crashed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import clean_env, fmt_time  # noqa: E402

#: (name, script arguments); ``--otel sdk`` steps get a process with the SDK set up
STEPS = [
    ("wrapper", ["bench_wrapper.py", "--otel", "api"]),
    ("wrapper-sdk", ["bench_wrapper.py", "--otel", "sdk"]),
    ("wrapper-sdk-metrics", ["bench_wrapper.py", "--otel", "sdk-metrics"]),
    ("connect", ["bench_connect.py", "--otel", "api"]),
    ("connect-sdk", ["bench_connect.py", "--otel", "sdk"]),
    ("import", ["bench_import.py"]),
    ("launcher", ["bench_launcher.py"]),
    ("attribution", ["bench_attribution.py"]),
    ("report", ["bench_report.py", "--otel", "api"]),
    ("spark", ["bench_spark.py"]),
    ("memory", ["bench_memory.py", "--otel", "api"]),
    ("memory-sdk", ["bench_memory.py", "--otel", "sdk"]),
]

#: ddtrace in the connect-sdk step: no agent, no telemetry, no remote configuration
DD_ENV = {
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_TRACE_STARTUP_LOGS": "false",
    "DD_TRACE_AGENT_URL": "http://127.0.0.1:9",
}

DISTRIBUTIONS = (
    "ua-autotag", "wrapt", "opentelemetry-api", "opentelemetry-sdk",
    "opentelemetry-instrumentation-psycopg", "ddtrace", "psycopg", "psycopg2-binary",
    "databricks-sdk", "databricks-sql-connector", "pyspark-client", "sqlalchemy",
    "requests", "httpx", "urllib3", "aiohttp", "pg8000", "connectorx", "adbc-driver-postgresql",
    "pyodbc", "pyperf",
)


def machine() -> Dict[str, Any]:
    """What the numbers were measured on."""
    from importlib import metadata

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    pg = None
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    except Exception as exc:
        pg = f"unreachable ({type(exc).__name__})"
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": commit,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "postgresql": pg,
        "versions": versions,
    }


def run_step(name: str, argv: List[str], quick: bool) -> Dict[str, Any]:
    """One script in a fresh process; its JSON output (rows, skips, extra)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    env = clean_env(**DD_ENV) if name == "connect-sdk" else clean_env()
    cmd = [sys.executable, str(HERE / argv[0]), *argv[1:], "--json-out", path]
    if quick:
        cmd.append("--quick")
    print(f"\n### {name}: {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=str(HERE), check=False)
    took = time.perf_counter() - start
    try:
        data: Dict[str, Any] = json.loads(Path(path).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        data = {}
    finally:
        Path(path).unlink(missing_ok=True)
    data.setdefault("rows", [])
    data.setdefault("skips", [])
    data["seconds"] = round(took, 1)
    data["returncode"] = done.returncode
    if done.returncode != 0:
        print(f"### {name} FAILED (exit {done.returncode})", flush=True)
    return data


def ratio(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def ci(pair: Any) -> str:
    if not pair or any(v is None or math.isnan(v) for v in pair):
        return "-"
    return f"{pair[0]:.3f}..{pair[1]:.3f}"


def table(meta: Dict[str, Any], steps: Dict[str, Dict[str, Any]]) -> str:
    """The short text table: one line per comparison, then memory, skips, verdicts."""
    lines = [
        f"ua-autotag benchmarks, {meta['date_utc']} UTC, commit {meta['commit']}",
        f"machine: {meta['cpu']}, {meta['cpu_count']} cores, {meta['platform']}; "
        f"{meta['implementation']} {meta['python']}; PostgreSQL {meta['postgresql']} on "
        "loopback; load average at start "
        + ", ".join(f"{x:.2f}" for x in meta["load_average_start"]),
        "times per operation, medians over rounds; diff and ratio are paired per round "
        "(interleaved), [q1 .. q3] is the spread",
        "",
    ]
    header = (f"{'benchmark':<58} {'variant':<40} {'median':>10} {'baseline':>10} "
              f"{'diff':>10} {'[q1 .. q3]':>23} {'ratio':>7} {'95% CI':>15}  target")
    lines += [header, "-" * len(header)]
    verdicts = []
    for data in steps.values():
        for row in data["rows"]:
            verdict = ""
            if row.get("target"):
                state = {True: "MET", False: "MISSED", None: "UNRESOLVED"}[row["met"]]
                verdict = f"{row['target']}: {state}"
                verdicts.append((row, verdict))
            spread = f"[{fmt_time(row['diff_q1'])} .. {fmt_time(row['diff_q3'])}]"
            lines.append(
                f"{(row['group'] + ' ' + row['bench'])[:58]:<58} {row['variant'][:40]:<40} "
                f"{fmt_time(row['median']):>10} {fmt_time(row['base_median']):>10} "
                f"{fmt_time(row['diff_median']):>10} {spread:>23} "
                f"{ratio(row['ratio_median']):>7} {ci(row.get('ratio_ci')):>15}  {verdict}"
            )
        for mem in data.get("extra", {}).get("memory", []):
            if "net_bytes" in mem:
                text = (f"net {mem['net_bytes']:+d} B after {mem['calls']} calls, "
                        f"{mem['second_half_bytes']:+d} B in the second half")
            else:
                text = (f"{mem['alive_after_close']} of {mem['connections']} closed "
                        "connections still referenced")
            verdict = f"{mem['target']}: {'MET' if mem['met'] else 'MISSED'}"
            lines.append(f"{('memory ' + mem['bench'])[:58]:<58} {text}  {verdict}")
            verdicts.append(({"group": "memory", "bench": mem["bench"], "variant": ""}, verdict))
    skips = [s for data in steps.values() for s in data["skips"]]
    if skips:
        lines += ["", "skipped:"]
        lines += [f"  {s['group']}/{s['bench']}: {s['reason']}" for s in skips]
    failed = [n for n, d in steps.items() if d["returncode"] != 0]
    if failed:
        lines += ["", f"FAILED steps: {', '.join(failed)}"]
    missed = [(r, v) for r, v in verdicts if v.endswith("MISSED")]
    unresolved = [(r, v) for r, v in verdicts if v.endswith("UNRESOLVED")]
    met = len(verdicts) - len(missed) - len(unresolved)
    lines += ["", f"targets: {met} met, {len(missed)} missed, {len(unresolved)} unresolved "
              "(95% CI straddles the target)"]
    lines += [f"  missed: {r['group']} {r['bench']} / {r['variant']} ({v})" for r, v in missed]
    lines += [f"  unresolved: {r['group']} {r['bench']} / {r['variant']}" for r, v in unresolved]
    took = sum(d["seconds"] for d in steps.values())
    lines.append(f"total time {took:.0f} s; load average at end "
                 + ", ".join(f"{x:.2f}" for x in meta.get("load_average_end", ())))
    return "\n".join(lines) + "\n"


def pyperf_suite(steps: Dict[str, Dict[str, Any]], path: Path) -> Optional[str]:
    """The samples as a pyperf suite (one benchmark per variant and baseline)."""
    try:
        import pyperf
    except ImportError:
        return "pyperf is not installed"
    benchmarks: Dict[str, Any] = {}
    for data in steps.values():
        for row in data["rows"]:
            for variant, values in ((row["variant"], row["samples"]),
                                    (row["baseline"], row["base_samples"])):
                key = f"{row['group']}/{row['bench']}/{variant}"
                values = [v for v in values if v > 0]
                if key in benchmarks or not values:
                    continue
                run = pyperf.Run(values, metadata={"name": key, "unit": "second",
                                                   "loops": row["inner"]},
                                 collect_metadata=False)
                benchmarks[key] = pyperf.Benchmark([run])
    if not benchmarks:
        return "no samples"
    pyperf.BenchmarkSuite(list(benchmarks.values())).dump(str(path), replace=True)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="few rounds (smoke run, ~1-2 min); writes latest-quick.*")
    parser.add_argument("--only", action="append", choices=[s[0] for s in STEPS],
                        help="run only this step (repeatable)")
    parser.add_argument("--out", default=str(HERE / "results"), help="results folder")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "latest-quick" if args.quick else "latest"
    meta = machine()
    steps = {name: run_step(name, argv, args.quick)
             for name, argv in STEPS if not args.only or name in args.only}
    meta["load_average_end"] = os.getloadavg()
    meta["total_seconds"] = round(sum(d["seconds"] for d in steps.values()), 1)
    text = table(meta, steps)
    (out / f"{stem}.txt").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"machine": meta, "steps": steps}, indent=1))
    problem = pyperf_suite(steps, out / f"{stem}.pyperf.json")
    print("\n" + text)
    print(f"written: {out / (stem + '.json')}, {out / (stem + '.txt')}"
          + (f" (no pyperf suite: {problem})" if problem else f", {stem}.pyperf.json"))
    return 1 if any(d["returncode"] != 0 for d in steps.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
