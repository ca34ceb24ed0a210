"""Spark executors: what carrying the value with a function costs (issue 23).

* Executor, per call: a UDF's function called per row, bare vs as the executor runs it
  once it carries a value (``ua_autotag.executor.receive``: the value set and reset
  around each call). Target: <= 1 us.
* Executor, per partition: an RDD function (``mapPartitionsWithIndex`` shape) reading a
  100-row partition through a generator, bare vs carried (the value set around each
  step of the iterator): the diff / 100 is the cost per row.
* Pickled command growth: ``cloudpickle`` (pyspark's, what Spark sends) of
  ``(function, returnType)`` bare vs carried, for a by-reference and a by-value function
  (bytes, in ``extra``). Target: <= 300 bytes.
* Driver, hand-over: creating a Spark Connect ``UserDefinedFunction`` (pyspark-client,
  no server needed) with nothing configured (the integration is not applied: the same
  code as never importing ua-autotag), vs unpatched; with a process default (the
  function carried) for context.
"""

from __future__ import annotations

import operator
import sys
from typing import Any, Dict

import ua_autotag
from harness import Output, Variant, arguments, compare, interleave
from ua_autotag import executor

UA = "AcmePartner_DatEngProduct/3.5"
ROWS = 100


def udf_function(value: Any) -> Any:
    return value


def partition_function(split: int, iterator: Any) -> Any:
    for row in iterator:
        yield row + 0  # a row of work per step (not a plain yield from)


def main() -> int:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    rounds, inner = (10, 2000) if args.quick else (40, 20000)
    settings = ua_autotag.instrument(UA)

    # ------------------------------------------------------------ executor per call
    per_row = executor.receive(
        (udf_function, executor.payload(settings, executor.DEFAULT, value=True))
    )
    samples = interleave(
        [Variant("bare function", lambda: udf_function(1)),
         Variant("carried (per row)", lambda: per_row(1))],
        rounds, inner,
    )
    out.emit(compare("spark", "executor: UDF call per row", samples, "bare function", inner,
                     targets={"carried (per row)": ("<= 1 us",
                                                    lambda r: r.diff_median <= 1e-6)}),
             "executor: a UDF's function per row")

    per_partition = executor.receive(
        (partition_function, executor.payload(settings, executor.DEFAULT))
    )
    data = list(range(ROWS))

    def drain(func: Any) -> Any:
        return lambda: sum(1 for _ in func(0, iter(data)))

    part_inner = max(inner // ROWS, 20)
    samples = interleave(
        [Variant("bare function", drain(partition_function)),
         Variant(f"carried ({ROWS} rows)", drain(per_partition))],
        rounds, part_inner,
    )
    out.emit(compare("spark", f"executor: RDD partition of {ROWS} rows", samples,
                     "bare function", part_inner,
                     targets={f"carried ({ROWS} rows)": (
                         f"<= 1 us per row ({ROWS} us)", lambda r: r.diff_median <= ROWS * 1e-6)}),
             f"executor: an RDD function reading a {ROWS}-row partition")

    # ------------------------------------------------------------ pickled size
    try:
        from pyspark.serializers import CloudPickleSerializer
    except ImportError as exc:
        out.skip("spark", "pickled growth", f"pyspark not installed: {exc}")
    else:
        dumps = CloudPickleSerializer().dumps
        growth: Dict[str, int] = {}
        for label, func in (("by reference", operator.neg), ("by value", lambda x: -x)):
            carried = executor.carry(func, executor.payload(settings, executor.PRODUCT, True))
            growth[label] = len(dumps((carried, "string"))) - len(dumps((func, "string")))
        out.extra["pickled_growth_bytes"] = growth
        print(f"pickled command growth (bytes, value {UA!r}): {growth} [target: <= 300]",
              flush=True)

    # ------------------------------------------------------------ driver hand-over
    ua_autotag.uninstrument()
    try:
        import pyspark.sql.connect.udf as connect_udf
    except Exception as exc:  # pyspark-client missing or not importable here
        out.skip("spark", "driver hand-over", f"pyspark.sql.connect.udf: {exc}")
    else:
        make = connect_udf.UserDefinedFunction

        def create() -> Any:
            return make(udf_function, "string")

        def configure() -> None:
            ua_autotag.instrument(UA)

        samples = interleave(
            [Variant("unpatched", create),
             Variant("ua_autotag imported, nothing configured", create),
             Variant("process default (carried)", create, configure, ua_autotag.uninstrument)],
            rounds, max(inner // 10, 100),
        )
        carried = False
        configure()
        carried = isinstance(create().func, executor.Carried)
        ua_autotag.uninstrument()
        if not carried:
            out.skip("spark", "driver hand-over", "the Connect UDF was not carried")
        out.emit(compare("spark", "driver: Spark Connect udf() hand-over", samples,
                         "unpatched", max(inner // 10, 100)),
                 "driver: creating a UDF")
    out.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
