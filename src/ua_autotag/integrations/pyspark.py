"""PySpark (classic and Spark Connect): the value travels with the functions Spark runs remotely.

A function handed to Spark runs on an executor, in a Python worker that inherits nothing of
the driver: not its process default, not a scope, and (for a lambda or a nested function,
which cloudpickle ships by value) not even the product package that defined it. So the
decision is taken where user code hands the function over — the value a connection opened
right there would get (:func:`ua_autotag.engine.attribution.current`: a scope, else the
innermost registered product on the stack, else the process default; nothing when nothing
applies) — and travels with the function (:mod:`ua_autotag.executor`): on the executor it
runs with that value in force.

Where functions are handed over (every public way funnels through one of these):

* classic RDDs: ``PipelinedRDD.__init__`` - ``map``, ``flatMap``, ``filter``,
  ``mapPartitions(WithIndex)``, ``foreach(Partition)``, ``reduce``, ``fold``,
  ``aggregate``, the ``*ByKey`` family, ``DataFrame.foreach(Partition)`` (through
  ``df.rdd``), barrier stages; each transformation carries its own decision, also when
  Spark pipelines several into one task;
* UDFs, classic and Spark Connect: ``UserDefinedFunction.__init__`` - ``udf``,
  ``pandas_udf``, ``spark.udf.register``, ``mapInPandas`` / ``mapInArrow``,
  ``applyInPandas`` / ``applyInArrow``, ``cogroup().applyInPandas``,
  ``applyInPandasWithState``, and Spark Connect's ``foreach`` / ``foreachPartition``;
* Python UDTFs (``udtf``, classic and Connect), where they are applied or registered
  (classic ``UserDefinedTableFunction._create_judtf``, Connect ``PythonUDTF``): on the
  executor the handler's ``__init__``, ``eval``, ``terminate`` and ``cleanup`` run with
  the value;
* Structured Streaming ``foreach`` writers (classic and Connect share
  ``DataStreamWriter._construct_foreach_function``) and Spark Connect's
  ``foreachBatch`` (run by a Python process of the server).

A function that already carries a decision keeps it (a UDF registered again under a
name). Nothing happens where nothing is configured: the integration is applied only when
something is, and hands a function over unchanged when no value applies.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from ..engine import attribution
from ..executor import DEFAULT, PRODUCT, SCOPE, Carried, carry, payload
from ..settings import Settings
from ..spec import Integration, Patch, Tag, argument, with_argument
from ..value import UserAgent

NAME = "pyspark"

#: UDF evaluation types whose function returns a value (called per row, batch or group),
#: never an iterator to read under the value (pyspark.util.PythonEvalType)
VALUE_EVAL_TYPES = frozenset((100, 101, 200, 201, 202, 203, 206, 209, 210))

_CONNECT_UDF = "pyspark.sql.connect.udf"
_CONNECT_PLAN = "pyspark.sql.connect.plan"
_CONNECT_STREAMING = "pyspark.sql.connect.streaming.readwriter"


#: what :func:`_decision` answers when no value applies where the function is handed over
#: but products are registered: the function may still be one of theirs (:func:`_definer`)
_UNDECIDED = Settings(UserAgent("UaAutotag", "Undecided"))


def _decision(instance: Any) -> Optional[Settings]:
    """The value a connection opened here would get (or :data:`_UNDECIDED`)."""
    settings = attribution.current()
    if settings is None and attribution.products_registered():
        return _UNDECIDED
    return settings


def _definer(func: Any, depth: int = 0) -> Optional[Settings]:
    """The settings of the registered product whose module defined ``func`` (looking
    through pyspark's own wrapper closures, a few levels deep), if any.

    On the driver that product's frames would be the innermost registered ones while
    ``func`` runs; on an executor they may not be (a lambda shipped by value does not
    import its package), so its value travels instead.
    """
    st = attribution.state()
    if st is None or not st.by_package or depth > 3:
        return None
    module = getattr(func, "__module__", None)
    if isinstance(module, str):
        product = st.product_of_module(module)
        if product is not None and product.settings is not None:
            return product.settings
    inner = getattr(func, "func", None)  # functools.partial
    found = [inner] if inner is not None else []
    for cell in getattr(func, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for candidate in found:
        if callable(candidate) and not isinstance(candidate, type):
            settings = _definer(candidate, depth + 1)
            if settings is not None:
                return settings
    return None


def _kind(settings: Settings) -> str:
    """Whether ``settings`` are a scope's, a product's or the process default's."""
    holder = attribution.holder(settings)
    if holder is attribution.DEFAULT:
        return DEFAULT
    if isinstance(holder, attribution.Product):
        return PRODUCT
    st = attribution.state()
    if st is not None and settings in st.handed:  # a Connect foreachBatch on the server
        return DEFAULT
    return SCOPE


def _carried(func: Any, settings: Settings, value: bool = False) -> Any:
    """``func`` carrying the decision: a scope's value; else the product that defined
    ``func``; else the product or default of the code handing it over; else nothing."""
    if isinstance(func, Carried):
        return func  # handed over before (a UDF registered under a name): its decision
    kind = None if settings is _UNDECIDED else _kind(settings)
    if kind != SCOPE:
        definer = _definer(func)
        if definer is not None and NAME in definer.active:
            settings, kind = definer, PRODUCT
    if kind is None:
        return func
    return carry(func, payload(settings, kind, value))


def _rdd(tag: Tag, rdd: Any, args: Any, kwargs: Any) -> Tuple[Any, Any]:
    """``PipelinedRDD(prev, func, ...)``: ``func(split, iterator)`` carries the decision."""
    func = argument(args, kwargs, 1, "func")
    if func is None:
        return args, kwargs
    return with_argument(args, kwargs, 1, "func", _carried(func, tag.settings))


def _udf(tag: Tag, udf: Any, args: Any, kwargs: Any, result: Any) -> Any:
    """``UserDefinedFunction(func, returnType, name, evalType, ...)``: its function
    carries the decision (after Spark validated and named it)."""
    func = getattr(udf, "func", None)
    if func is not None:
        value = getattr(udf, "evalType", None) in VALUE_EVAL_TYPES
        udf.func = _carried(func, tag.settings, value)
    return result


def _udtf(tag: Tag, owner: Any, args: Any, kwargs: Any) -> Tuple[Any, Any]:
    """A Python UDTF's handler class as it is pickled (classic ``_create_judtf(func)``,
    Connect ``PythonUDTF(func, ...)``: where the UDTF is applied or registered); the
    user's UDTF object keeps its class."""
    cls = argument(args, kwargs, 0, "func")
    if not isinstance(cls, type):
        return args, kwargs
    return with_argument(args, kwargs, 0, "func", _carried(cls, tag.settings))


def _foreach(tag: Tag, writer: Any, args: Any, kwargs: Any, result: Any) -> Any:
    """``DataStreamWriter._construct_foreach_function(f)``: the per-partition function
    built around a streaming ``foreach`` writer (a function or an object)."""
    return _carried(result, tag.settings) if callable(result) else result


def _foreach_batch(tag: Tag, writer: Any, args: Any, kwargs: Any) -> Tuple[Any, Any]:
    """Spark Connect ``foreachBatch(func)``: run by a Python process of the server."""
    func = argument(args, kwargs, 0, "func")
    if func is None:
        return args, kwargs
    return with_argument(args, kwargs, 0, "func", _carried(func, tag.settings, True))


INTEGRATION = Integration(
    name=NAME,
    supported=">=3.5",
    system="spark",
    patches=(
        # pyspark 4 keeps the RDD in pyspark.core.rdd, also registered as pyspark.rdd
        Patch(
            "pyspark.rdd",
            "PipelinedRDD.__init__",
            before=_rdd,
            optional=True,
            settings=_decision,
            leaf=True,
        ),
        Patch(
            "pyspark.sql.udf",
            "UserDefinedFunction.__init__",
            after=_udf,
            optional=True,
            settings=_decision,
            leaf=True,
        ),
        Patch(
            "pyspark.sql.udtf",
            "UserDefinedTableFunction._create_judtf",
            before=_udtf,
            optional=True,
            settings=_decision,
            leaf=True,
        ),
        Patch(
            "pyspark.sql.streaming.readwriter",
            "DataStreamWriter._construct_foreach_function",
            after=_foreach,
            optional=True,
            settings=_decision,
            leaf=True,
        ),
        Patch(
            _CONNECT_UDF,
            "UserDefinedFunction.__init__",
            after=_udf,
            optional=True,
            settings=_decision,
            leaf=True,
            when=_CONNECT_UDF,
        ),
        Patch(
            _CONNECT_PLAN,
            "PythonUDTF.__init__",
            before=_udtf,
            optional=True,
            settings=_decision,
            leaf=True,
            when=_CONNECT_PLAN,
        ),
        Patch(
            _CONNECT_STREAMING,
            "DataStreamWriter.foreachBatch",
            before=_foreach_batch,
            optional=True,
            settings=_decision,
            leaf=True,
            when=_CONNECT_STREAMING,
        ),
    ),
)
