"""6. Memory: no growth over many patched calls, no reference kept to connections.

* ``tracemalloc`` snapshot before and after 100 000 patched calls of the no-I/O
  integration (spans on: the API's non-recording spans, or the SDK's recording spans
  with ``--otel sdk``), and 10 000 psycopg connects with the network step cut (the
  real psycopg path, ``_get_connection_params`` and our merge). Warm-up calls come
  first (first-call caches are not growth). Pass: net growth under 64 KiB (a leak of
  even one small object per call would be >= 100 000 x 16 bytes, 1.6 MB).
* Real connections: 200 psycopg and 200 psycopg2 connections opened patched against
  the loopback server, closed, dropped; after ``gc.collect()`` no weak reference may
  be alive, i.e. ua-autotag (registry, spans, contextvars) holds none of them.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref
from typing import Any, Callable, Dict, List

import ua_autotag
from harness import HERE, PG_DSN, UA, Output, arguments, sdk_providers

LIMIT = 16 * 1024


def growth(fn: Callable[[], Any], calls: int, warm: int = 2000) -> Dict[str, Any]:
    """Traced bytes after ``calls`` calls of ``fn``: in all, and over the second half.

    A bounded cache (the client's or ours) fills in the first half and stops; a leak
    keeps growing, so the second half's growth is the verdict.
    """
    for _ in range(warm):
        fn()
    gc.collect()
    tracemalloc.start(1)
    snaps = [tracemalloc.take_snapshot()]
    for _ in range(2):
        for _ in range(calls // 2):
            fn()
        gc.collect()
        snaps.append(tracemalloc.take_snapshot())
    tracemalloc.stop()

    def net(a: Any, b: Any) -> int:
        return sum(s.size_diff for s in b.compare_to(a, "lineno"))

    top = [str(s) for s in snaps[2].compare_to(snaps[1], "lineno")[:3] if s.size_diff > 0]
    return {"calls": calls, "net_bytes": net(snaps[0], snaps[2]),
            "second_half_bytes": net(snaps[1], snaps[2]), "top": top}


DISTINCT = 400  # > every per-connect cache's bound (256): the caches fill and churn


def caches_full(calls: int) -> Dict[str, Any]:
    """Our per-connect caches full and churning: ``calls`` connects over 400 distinct
    inputs each (psycopg2 DSNs, pyodbc connection strings, REST User-Agents, JDBC
    URLs), more than any cache holds, so every cache is full from the warm-up on and
    keeps evicting. The second half must not grow.
    """
    import itertools

    import psycopg2

    import cases

    ua_autotag.uninstrument()
    made = [cases._psycopg2(), cases._pyodbc(), cases._jaydebeapi()]
    ua_autotag.instrument(UA, integrations=["psycopg2", "pyodbc", "jaydebeapi", "requests"],
                          spans=False)
    import jaydebeapi
    import pyodbc

    from ua_autotag.merge.http import merge_rest_user_agent

    dsns = [f"host=127.0.0.1 port=5432 user=postgres dbname=test application_name=app{i}"
            for i in range(DISTINCT)]
    odbc = [f"Driver=Simba Spark ODBC Driver;Host=adb-{i}.2.azuredatabricks.net;Port=443;"
            f"UID=token;PWD=dapi{i}" for i in range(DISTINCT)]
    urls = [f"jdbc:databricks://adb-{i}.azuredatabricks.net:443/default;UserAgentEntry=a{i}"
            for i in range(DISTINCT)]
    agents = [f"app/{i}" for i in range(DISTINCT)]
    index = itertools.cycle(range(DISTINCT))

    def one() -> None:
        i = next(index)
        psycopg2.connect(dsns[i])
        pyodbc.connect(odbc[i])
        jaydebeapi._jdbc_connect("Driver", urls[i], None, None, None)
        merge_rest_user_agent(agents[i], UA, "append")

    try:
        assert UA in psycopg2.connect(dsns[0]) and UA in pyodbc.connect(odbc[0])
        result = peaks(one, calls // 4, warm=2 * DISTINCT)
    finally:
        ua_autotag.uninstrument()
        for case in made:
            if case.cleanup is not None:
                case.cleanup()
    return {f"caches full: psycopg2 + pyodbc + JDBC + REST merge, {DISTINCT} distinct "
            f"inputs, {calls} calls (spans off)": result}


def peaks(fn: Callable[[], Any], calls: int, warm: int, every: int = 25) -> Dict[str, Any]:
    """:func:`growth` for caches that are cleared when full (a sawtooth, not a leak).

    Snapshots at two points can catch the caches at different fill levels, so the
    traced memory is sampled every ``every`` calls and the *peak* of the second half
    is compared with the peak of the first: a bounded cache has the same peak, a leak
    a higher one. ``net_bytes`` is the second half's peak over the start.
    """
    for _ in range(warm):
        fn()
    gc.collect()
    tracemalloc.start(1)
    start = tracemalloc.get_traced_memory()[0]
    halves: List[int] = []
    for _ in range(2):
        top = 0
        for i in range(calls // 2):
            fn()
            if i % every == 0:
                top = max(top, tracemalloc.get_traced_memory()[0])
        halves.append(top)
    tracemalloc.stop()
    return {"calls": calls * 4, "net_bytes": halves[1] - start,
            "second_half_bytes": halves[1] - halves[0], "top": [
                f"peak traced memory: first half {halves[0] - start:+d} B, second half "
                f"{halves[1] - start:+d} B over the start (sampled every {every} calls)"]}


def no_references(client: str, count: int) -> Dict[str, Any]:
    """Open ``count`` patched connections, close and drop them; how many stay alive."""
    refs: List[weakref.ref[Any]] = []
    if client == "psycopg":
        import psycopg

        def connect() -> Any:
            return psycopg.connect(PG_DSN)
    else:
        import psycopg2

        def connect() -> Any:
            return psycopg2.connect(PG_DSN)

    for _ in range(count):
        conn = connect()
        try:
            refs.append(weakref.ref(conn))
        finally:
            conn.close()
        del conn
    gc.collect()
    alive = sum(1 for r in refs if r() is not None)
    return {"connections": count, "alive_after_close": alive}


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    sdk = args.otel == "sdk"
    if sdk:
        sdk_providers()
    quick = args.quick
    sys.path.insert(0, str(HERE))
    import noio_integration

    noio_integration.register()
    import noio_client

    ua_autotag.instrument(UA, integrations=["noio", "psycopg", "psycopg2"], spans=True)
    label = "SDK spans" if sdk else "API-only spans"
    results: Dict[str, Any] = {}
    headers = {"User-Agent": "app/1"}
    calls = 10_000 if quick else 100_000
    results[f"noio connect() x{calls} ({label})"] = growth(
        lambda: noio_client.connect(host="h", port=1, headers=headers), calls
    )
    import cases

    case = cases._psycopg()
    n = 1_000 if quick else 10_000
    results[f"psycopg connect, network cut x{n} ({label})"] = growth(case.fn, n, warm=200)
    if not sdk:
        results.update(caches_full(calls))
    rows = []
    for name, res in results.items():
        ok = res["second_half_bytes"] < LIMIT
        rows.append({"bench": name, **res, "target": "second-half growth < 16 KiB",
                     "met": ok})
        print(f"  {name}: net {res['net_bytes']:+d} bytes after {res['calls']} calls, "
              f"{res['second_half_bytes']:+d} in the second half "
              f"[target: second half < 16 KiB] {'MET' if ok else 'MISSED'}", flush=True)
        for line in res["top"]:
            print(f"      {line}", flush=True)
    if not sdk:
        for client in ("psycopg", "psycopg2"):
            try:
                res = no_references(client, 20 if quick else 200)
            except TypeError as exc:  # a connection type without weak reference support
                out.skip("memory", f"{client} references", str(exc))
                continue
            ok = res["alive_after_close"] == 0
            rows.append({"bench": f"{client} real connections kept alive", **res,
                         "target": "0 alive", "met": ok})
            print(f"  {client}: {res['alive_after_close']} of {res['connections']} closed "
                  f"patched connections still referenced [target: 0] "
                  f"{'MET' if ok else 'MISSED'}", flush=True)
    ua_autotag.uninstrument()
    out.extra["memory"] = rows
    out.save()


if __name__ == "__main__":
    print("== memory", flush=True)
    main()
