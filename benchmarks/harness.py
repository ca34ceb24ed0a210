"""Interleaved A/B timing, paired statistics and result records for the suite.

Why not pyperf's ``Runner`` directly: it times one benchmark after another in
separate worker processes, so machine drift (other jobs on the 2 shared cores,
CPU frequency) lands on one variant and not the other. Here every *round* runs
each variant once, in a freshly shuffled order, in the same process; the cost of a
variant is compared with the baseline *of the same round* (paired difference and
ratio), and we report the median and the interquartile range over many rounds.
pyperf is still used for what it is good at: its JSON format (``latest.pyperf.json``,
readable by ``python -m pyperf compare_to`` / ``stats``) and its system metadata.

A benchmark script builds :class:`Variant` objects, calls :func:`interleave`, turns
the samples into :class:`Row` records with :func:`compare` and hands them to
:func:`emit`, which prints them and appends them to the ``--json-out`` file the
runner (``benchmarks/run.py``) collects.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
UA = "AcmePartner_DatEngProduct/3.5"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@dataclass
class Variant:
    """One way of running the same operation: ``fn`` is timed, ``inner`` times per sample.

    ``setup``/``teardown`` run (untimed) around each sample: they switch patches on
    and off between samples, so all variants share one process and one round. Before
    each sample one untimed call warms the state up (first-call caches, lazy imports),
    for every variant alike: samples measure the steady state.
    """

    name: str
    fn: Callable[[], Any]
    setup: Optional[Callable[[], None]] = None
    teardown: Optional[Callable[[], None]] = None


@dataclass
class Row:
    """One result line: ``variant`` against ``baseline`` in benchmark ``bench``.

    Times are seconds per operation. ``diff_*`` are paired (same-round) differences
    variant - baseline, ``ratio_*`` paired ratios variant / baseline; ``*_q1``/``*_q3``
    the interquartile range, i.e. the spread over ``rounds`` rounds.
    """

    group: str
    bench: str
    variant: str
    baseline: str
    median: float
    q1: float
    q3: float
    base_median: float
    diff_median: float
    diff_q1: float
    diff_q3: float
    ratio_median: float
    ratio_q1: float
    ratio_q3: float
    rounds: int
    inner: int
    ratio_ci: Tuple[float, float] = (float("nan"), float("nan"))
    diff_ci: Tuple[float, float] = (float("nan"), float("nan"))
    target: Optional[str] = None
    met: Optional[bool] = None
    note: Optional[str] = None
    samples: List[float] = field(default_factory=list)
    base_samples: List[float] = field(default_factory=list)


def median_ci(values: Sequence[float]) -> Tuple[float, float]:
    """Distribution-free ~95 % confidence interval of the median (order statistics)."""
    n = len(values)
    if n < 6:
        return float("nan"), float("nan")
    ordered = sorted(values)
    half = 0.98 * math.sqrt(n)
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return ordered[low], ordered[high]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3); degenerate inputs give the value itself three times."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def interleave(
    variants: Sequence[Variant],
    rounds: int,
    inner: int,
    warmup: int = 1,
    seed: int = 20261125,
    timer: Callable[[], int] = time.perf_counter_ns,
    per_call: bool = False,
) -> Dict[str, List[float]]:
    """Per variant, ``rounds`` samples of seconds per call (``inner`` calls each).

    Each round runs every variant once in a new random order (fixed seed: the same
    orders on every run). ``warmup`` untimed rounds come first (caches, lazy imports).
    The cyclic garbage collector is disabled during each sample (as ``timeit``
    does), so its pauses do not land on whichever variant happens to trigger them;
    it runs again in the untimed set-up/teardown between samples. (An explicit
    ``gc.collect()`` per sample costs ~0.1 s with pyspark and pandas loaded.)
    ``per_call`` (for I/O-bound calls of milliseconds) times each call and keeps
    the sample's median call instead of the mean: one scheduling hiccup of the
    shared machine then does not move the sample.
    """
    rng = random.Random(seed)
    out: Dict[str, List[float]] = {v.name: [] for v in variants}
    order = list(variants)
    for index in range(warmup + rounds):
        rng.shuffle(order)
        for variant in order:
            if variant.setup is not None:
                variant.setup()
            fn = variant.fn
            try:
                fn()  # untimed: the state just switched; every variant alike
                gc.disable()  # as timeit does: no collector pause inside a sample
                if per_call:
                    times = []
                    for _ in range(inner):
                        start = timer()
                        fn()
                        times.append(timer() - start)
                    elapsed = statistics.median(times) * inner
                else:
                    start = timer()
                    for _ in range(inner):
                        fn()
                    elapsed = timer() - start
            finally:
                gc.enable()
                if variant.teardown is not None:
                    variant.teardown()
            if index >= warmup:
                out[variant.name].append(elapsed / inner / 1e9)
    return out


def compare(
    group: str,
    bench: str,
    samples: Dict[str, List[float]],
    baseline: str,
    inner: int,
    targets: Optional[Dict[str, tuple[str, Callable[[Row], bool]]]] = None,
    notes: Optional[Dict[str, str]] = None,
) -> List[Row]:
    """Rows for every variant except ``baseline``, paired round by round with it."""
    base = samples[baseline]
    rows = []
    for name, values in samples.items():
        if name == baseline:
            continue
        diffs = [a - b for a, b in zip(values, base)]
        ratios = [a / b for a, b in zip(values, base) if b > 0]
        q1, med, q3 = quartiles(values)
        d1, dm, d3 = quartiles(diffs)
        r1, rm, r3 = quartiles(ratios)
        row = Row(
            group=group,
            bench=bench,
            variant=name,
            baseline=baseline,
            median=med,
            q1=q1,
            q3=q3,
            base_median=statistics.median(base),
            diff_median=dm,
            diff_q1=d1,
            diff_q3=d3,
            ratio_median=rm,
            ratio_q1=r1,
            ratio_q3=r3,
            rounds=len(values),
            inner=inner,
            ratio_ci=median_ci(ratios),
            diff_ci=median_ci(diffs),
            samples=values,
            base_samples=base,
        )
        if targets and name in targets:
            row.target, check = targets[name]
            verdict = check(row)  # True / False, or None: unresolved
            row.met = None if verdict is None else bool(verdict)
        if notes and name in notes:
            row.note = notes[name]
        rows.append(row)
    return rows


def fmt_time(seconds: float) -> str:
    """Human units, sign kept: ``+1.23 us``, ``4.56 ms``."""
    a = abs(seconds)
    if a >= 1:
        return f"{seconds:.3f} s"
    if a >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if a >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


def fmt_row(row: Row) -> str:
    verdict = "  UNRESOLVED" if row.met is None else ("  MET" if row.met else "  MISSED")
    target = f"  [target: {row.target}]{verdict}" if row.target else ""
    return (
        f"  {row.variant:<34} {fmt_time(row.median):>10}  vs {row.baseline}"
        f" {fmt_time(row.base_median)}: diff {fmt_time(row.diff_median):>10}"
        f" (IQR {fmt_time(row.diff_q1)} .. {fmt_time(row.diff_q3)}),"
        f" ratio {row.ratio_median:.4f} (IQR {row.ratio_q1:.4f} .. {row.ratio_q3:.4f},"
        f" 95% CI {row.ratio_ci[0]:.4f} .. {row.ratio_ci[1]:.4f}),"
        f" n={row.rounds}x{row.inner}{target}"
    )


@dataclass
class Skip:
    """A benchmark that could not run here, and why (printed and kept in the JSON)."""

    group: str
    bench: str
    reason: str


class Output:
    """Collects rows and skips of one benchmark script; prints as it goes."""

    def __init__(self, json_out: Optional[str]) -> None:
        self.json_out = json_out
        self.rows: List[Row] = []
        self.skips: List[Skip] = []
        self.extra: Dict[str, Any] = {}

    def emit(self, rows: List[Row], title: str) -> None:
        print(f"{title}", flush=True)
        for row in rows:
            print(fmt_row(row), flush=True)
            if row.note:
                print(f"      note: {row.note}", flush=True)
        self.rows.extend(rows)

    def skip(self, group: str, bench: str, reason: str) -> None:
        print(f"SKIPPED {group}/{bench}: {reason}", flush=True)
        self.skips.append(Skip(group, bench, reason))

    def save(self) -> None:
        if not self.json_out:
            return
        data = {
            "rows": [asdict(r) for r in self.rows],
            "skips": [asdict(s) for s in self.skips],
            "extra": self.extra,
        }
        Path(self.json_out).write_text(json.dumps(data, indent=1))


def arguments(description: str) -> argparse.Namespace:
    """The options every bench script takes (``--quick``, ``--json-out``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--json-out", help="append results to this JSON file (runner use)")
    parser.add_argument("--otel", choices=("api", "sdk", "sdk-metrics"), default="api",
                        help="no OpenTelemetry SDK / SDK tracer / SDK tracer + meter")
    return parser.parse_args()


def clean_env(**extra: str) -> Dict[str, str]:
    """os.environ without any UA_AUTOTAG_* / OTEL_* / DD_* variable, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UA_AUTOTAG_", "OTEL_", "DD_"))
    }
    env.update(extra)
    return env


def run_python(code: str, env: Optional[Dict[str, str]] = None) -> str:
    """Run ``code`` in a fresh interpreter of this Python; its stdout (stripped)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def sdk_providers(with_metrics: bool = False) -> None:
    """Install the OpenTelemetry SDK ``TracerProvider`` (no span processor/exporter).

    What an application that configured the SDK but exports nothing pays for: real
    recording spans, nothing shipped. ``with_metrics`` also installs the SDK
    ``MeterProvider`` (no reader), so our ``ua_autotag.connections`` counter records
    too. Once per process (an OpenTelemetry rule).
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    if with_metrics:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider

        metrics.set_meter_provider(MeterProvider())


def active() -> Any:
    """The process-default settings in force (``instrument()`` without ``packages``)."""
    from ua_autotag.engine import attribution

    st = attribution.state()
    return None if st is None else st.default


def use_settings(settings: Any) -> None:
    """Make ``settings`` the process default without re-patching (None: nothing tags)."""
    from ua_autotag.engine import attribution

    st = attribution.state()
    products = st.products if st is not None else ()
    attribution.use_state(
        None if settings is None and not products else attribution.State(settings, products)
    )


def set_settings(**changes: Any) -> Any:
    """Replace the default ua-autotag settings (e.g. ``spans=False``) without re-patching."""
    from ua_autotag.settings import Settings

    current = active()
    assert current is not None, "instrument() first"
    fields = {
        name: getattr(current, name)
        for name in ("user_agent", "mode", "spans", "strict", "integrations", "disabled",
                     "rest_hosts", "sources", "packages", "origin")
    }
    fields.update(changes)
    new = Settings(**fields)
    use_settings(new)
    return new
