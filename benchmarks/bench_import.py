"""3. Import cost, in fresh interpreters (issue 9 §3).

Each sample is a new ``python -c ...`` that times itself with ``perf_counter_ns``
around the statement under test (interpreter start-up is not in the number), runs
interleaved in shuffled order with the other variants of the same benchmark.

* ``import ua_autotag`` with no ``UA_AUTOTAG_*`` configuration (target <= 5 ms).
* ``instrument()`` before any client is imported, after ``import wrapt`` (target
  <= 5 ms beyond wrapt's own import, which is reported beside it).
* ``import sqlalchemy`` / ``import databricks.sdk`` after ``instrument()`` (post-import
  hooks in ``sys.meta_path``; ``databricks.sdk`` also triggers our databricks_sdk,
  requests and urllib3 integrations, whose application is counted) vs the same
  import with the same modules preloaded but nothing instrumented (target <= 2 %).
  A bare interpreter is shown for context. These two are timed in process CPU time
  (``process_time_ns``): an import with warm caches is CPU work, and CPU time does
  not count the time the child spent descheduled by other jobs on the 2 shared
  cores, which made wall-clock ratios swing by +-15 %. The verdict needs the 95 %
  confidence interval of the ratio on one side of 1.02 (else UNRESOLVED).

Bytecode: this environment sets ``PYTHONDONTWRITEBYTECODE=1``; without ``.pyc`` files
every import would be a compile and the numbers meaningless. The children run
with it unset, after one untimed warm-up child per variant that writes the caches.
"""

from __future__ import annotations

import json
import random
from typing import Dict, List, Optional

from harness import UA, Output, Row, arguments, clean_env, compare, quartiles, run_python

T0 = "import time; _t0 = time.process_time_ns()\n"
T1 = "_t1 = time.process_time_ns()\n"

PRELOAD = "import wrapt, ua_autotag, ua_autotag.config, ua_autotag.registry, ua_autotag.telemetry\n"
INSTRUMENT = f"import ua_autotag; ua_autotag.instrument({UA!r})\n"


def child(code: str) -> List[float]:
    """Run ``code`` in a fresh interpreter; the JSON list of ns values it prints last."""
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = run_python(code, env)
    values: List[float] = json.loads(out.splitlines()[-1])
    return values


def series(variants: Dict[str, str], rounds: int, seed: int = 9) -> Dict[str, List[List[float]]]:
    """Per variant, ``rounds`` outputs of its child (lists of seconds), interleaved."""
    for code in variants.values():
        child(code)  # warm-up: writes .pyc files, fills the OS page cache
    rng = random.Random(seed)
    names = list(variants)
    out: Dict[str, List[List[float]]] = {n: [] for n in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            values = child(variants[name])
            out[name].append([v / 1e9 for v in values])
    return out


def single(group: str, bench: str, variant: str, values: List[float],
           target: Optional[str] = None, limit: float = 0.0) -> Row:
    """A row for an absolute cost (no baseline of its own: the baseline is zero)."""
    q1, med, q3 = quartiles(values)
    return Row(group=group, bench=bench, variant=variant, baseline="nothing", median=med,
               q1=q1, q3=q3, base_median=0.0, diff_median=med, diff_q1=q1, diff_q3=q3,
               ratio_median=float("nan"), ratio_q1=float("nan"), ratio_q3=float("nan"),
               rounds=len(values), inner=1, target=target,
               met=None if target is None else med <= limit, samples=values)


def ci_verdict(row: Row) -> Optional[bool]:
    """Met when the 95 % CI of the ratio is below 1.02, missed when above, else None."""
    low, high = row.ratio_ci
    return True if high <= 1.02 else (False if low > 1.02 else None)


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    group = "import"
    rounds = 3 if args.quick else 16

    # 1 + 2: import ua_autotag; import wrapt; instrument()
    code = (
        "import time, json\n_a = time.perf_counter_ns()\nimport ua_autotag\n"
        "_b = time.perf_counter_ns()\nimport wrapt\n_c = time.perf_counter_ns()\n"
        f"ua_autotag.instrument({UA!r})\n_d = time.perf_counter_ns()\n"
        "print(json.dumps([_b - _a, _c - _b, _d - _c]))\n"
    )
    data = series({"ours": code}, rounds)["ours"]
    ms = 1e-3
    out.emit(
        [
            single(group, "import ua_autotag (no configuration)", "import ua_autotag",
                   [d[0] for d in data], "<= 5 ms", 5 * ms),
            single(group, "instrument() before any client", "import wrapt (context)",
                   [d[1] for d in data]),
            single(group, "instrument() before any client", "instrument() after wrapt",
                   [d[2] for d in data], "<= 5 ms beyond wrapt", 5 * ms),
        ],
        "== import: fresh interpreters, in-process timing",
    )

    # 3: later imports with the post-import hooks in place vs without
    for module in ("sqlalchemy", "databricks.sdk"):
        timed = f"{T0}import {module}\n{T1}import json; print(json.dumps([_t1 - _t0]))\n"
        variants = {
            "without ua-autotag (same modules preloaded)": PRELOAD + timed,
            "with instrument() active": INSTRUMENT + timed,
            "bare interpreter (context)": timed,
        }
        try:
            data = series(variants, max(3, rounds // (2 if module == "databricks.sdk" else 1)))
        except RuntimeError as exc:
            out.skip(group, f"import {module}", str(exc)[:300])
            continue
        samples = {k: [v[0] for v in vs] for k, vs in data.items()}
        rows = compare(
            group, f"import {module} (CPU time)", samples,
            "without ua-autotag (same modules preloaded)", 1,
            {"with instrument() active": ("<= 2 % slower (95% CI)", ci_verdict)},
            {"bare interpreter (context)": "nothing imported first: shared dependencies "
             "(logging, typing, asyncio via wrapt ...) are paid by the import itself"},
        )
        out.emit(rows, f"== import: import {module} (fresh interpreters)")
    out.save()


if __name__ == "__main__":
    main()
