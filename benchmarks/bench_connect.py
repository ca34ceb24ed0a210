"""2 + 5. Real connects and requests, patched vs unpatched, beside the anchors.

* psycopg / psycopg2: ``connect()`` + ``close()`` against the loopback PostgreSQL
  (127.0.0.1:5432, user postgres, database test): unpatched, ours (spans off / API
  only, or SDK with no exporter in ``--otel sdk``), and the anchors on the same
  loop: OpenTelemetry's ``PsycopgInstrumentor`` and ddtrace's psycopg patch. Target
  for ours: ratio <= 1.005.
* Databricks SDK, ``requests`` and ``httpx``: one request to the local HTTP peer
  (``ua_autotag.verify.http_peer.HeaderRecorder``) over a kept-alive connection.

Every variant is switched on and off between samples (``instrument``/``uninstrument``,
the anchors' own ``instrument``/``uninstrument`` and ``patch``/``unpatch``); before
timing, each is checked once: ours must put the tag where the server sees it, and
every teardown must give back the original ``connect`` objects.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List

import ua_autotag
from harness import PG_DSN, UA, Output, Variant, arguments, compare, interleave, sdk_providers

APPNAME_SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def _ours(spans: bool, *names: str, **extra: Any) -> Callable[[], None]:
    return lambda: ua_autotag.instrument(UA, integrations=list(names), spans=spans, **extra)


def _off() -> None:
    ua_autotag.uninstrument()


def _pg_originals() -> Dict[str, Any]:
    import psycopg
    import psycopg2

    return {
        "psycopg.connect": psycopg.connect,
        "psycopg.Connection.connect": psycopg.Connection.__dict__["connect"],
        "psycopg.Connection._get_connection_params":
            psycopg.Connection.__dict__["_get_connection_params"],
        "psycopg2.connect": psycopg2.connect,
        "psycopg2._connect": psycopg2._connect,
    }


def _anchors(client: str, sdk: bool, out: Output, group: str, bench: str) -> List[Variant]:
    """The OpenTelemetry instrumentor and ddtrace patch for ``client``, if installed."""
    found: List[Variant] = []
    suffix = "(SDK, no exporter)" if sdk else "(API only)"
    if client == "psycopg":
        try:
            from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        except ImportError as exc:
            out.skip(group, f"{bench}: otel instrumentor", f"not installed ({exc}); "
                     "run through `nox -s bench`, which installs the anchors")
        else:
            inst = PsycopgInstrumentor()
            originals = _pg_originals()

            def otel_off() -> None:
                # Its uninstrument() leaves psycopg.Connection.connect as a *bound method*
                # (setattr of BoundFunctionWrapper.__wrapped__), not the classmethod it
                # replaced: put the original object back so the next sample is clean.
                inst.uninstrument()
                for key, value in _pg_originals().items():
                    if value is not originals[key]:
                        _restore(key, originals[key])

            found.append(Variant(f"otel PsycopgInstrumentor {suffix}", _connect_fn(client),
                                 lambda: inst.instrument(skip_dep_check=True), otel_off))
    else:
        out.skip(group, f"{bench}: otel instrumentor", "opentelemetry-instrumentation-psycopg2 "
                 "is not one of the issue's anchors (not installed)")
    if sdk:
        try:
            import ddtrace.contrib.internal.psycopg.patch as ddp
        except ImportError as exc:
            out.skip(group, f"{bench}: ddtrace", f"not installed ({exc}); run through "
                     "`nox -s bench`, which installs the anchors")
        else:
            logging.getLogger("ddtrace").setLevel(logging.CRITICAL)
            found.append(Variant("ddtrace psycopg patch", _connect_fn(client),
                                 ddp.patch, ddp.unpatch))
    return found


def _connect_fn(client: str) -> Callable[[], None]:
    if client == "psycopg":
        import psycopg

        return lambda: psycopg.connect(PG_DSN).close()
    import psycopg2

    return lambda: psycopg2.connect(PG_DSN).close()


def _server_sees(client: str) -> str:
    if client == "psycopg":
        import psycopg

        with psycopg.connect(PG_DSN) as conn:
            return str(conn.execute(APPNAME_SQL).fetchone()[0])  # type: ignore[index]
    import psycopg2

    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor()
        cur.execute(APPNAME_SQL)
        return str(cur.fetchone()[0])
    finally:
        conn.close()


def _check(variants: List[Variant], client: str, out: Output, group: str, bench: str
           ) -> List[Variant]:
    """Drop (with the reason) variants that do not tag / wrap or do not restore originals."""
    originals = _pg_originals()
    kept = []
    for variant in variants:
        try:
            if variant.setup:
                variant.setup()
            seen = _server_sees(client)
            changed = [k for k, v in _pg_originals().items() if v is not originals[k]]
        finally:
            if variant.teardown:
                variant.teardown()
        restored = _pg_originals()
        broken = [k for k, v in restored.items() if v is not originals[k]]
        if variant.name.startswith("ours") and UA not in seen:
            out.skip(group, f"{bench}: {variant.name}", f"server saw {seen!r}, not our tag")
        elif variant.name != "unpatched" and not changed:
            out.skip(group, f"{bench}: {variant.name}", "it wrapped nothing")
        elif broken:
            out.skip(group, f"{bench}: {variant.name}", f"teardown left {broken} wrapped")
            for key in broken:  # put things back so later variants measure the truth
                _restore(key, originals[key])
        else:
            kept.append(variant)
    return kept


def _restore(key: str, value: Any) -> None:
    import psycopg
    import psycopg2

    owners = {"psycopg": psycopg, "psycopg2": psycopg2, "psycopg.Connection": psycopg.Connection}
    owner, _, attr = key.rpartition(".")
    setattr(owners[owner], attr, value)


def postgres(out: Output, sdk: bool, quick: bool) -> None:
    group = "connect-sdk" if sdk else "connect"
    rounds, inner = (4, 2) if quick else (50, 4)
    for client in ("psycopg", "psycopg2"):
        bench = f"{client} connect+close (loopback PostgreSQL)"
        fn = _connect_fn(client)
        names = ("psycopg",) if client == "psycopg" else ("psycopg2",)
        if sdk:
            ours = [Variant("ours, spans on (SDK, no exporter)", fn, _ours(True, *names), _off)]
        else:
            ours = [
                Variant("ours, spans off", fn, _ours(False, *names), _off),
                Variant("ours, spans on (API only)", fn, _ours(True, *names), _off),
            ]
        variants = [Variant("unpatched", fn), *ours, *_anchors(client, sdk, out, group, bench)]
        variants = _check(variants, client, out, group, bench)
        samples = interleave(variants, rounds, inner)
        targets = {
            v.name: ("ratio <= 1.005", lambda r: r.ratio_median <= 1.005)
            for v in ours
        }
        out.emit(compare(group, bench, samples, "unpatched", inner, targets),
                 f"== {group}: {bench}")


def http(out: Output, quick: bool) -> None:
    """SDK, requests and httpx requests to the local peer, tagged vs not."""
    from ua_autotag.verify.http_peer import HeaderRecorder

    group = "request"
    rounds, inner = (4, 5) if quick else (40, 20)
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    with HeaderRecorder() as peer:
        # Without TCP_NODELAY, the peer's separate header/body writes meet the client's
        # delayed ACK: every keep-alive request then waits ~40 ms and buries any
        # microsecond-scale cost. (Set per benchmark; the recorder itself is unchanged.)
        server = peer._server
        if server is not None:
            server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        peer.route("GET", "/api/2.0/preview/scim/v2/Me", (200, {"userName": "a@example.com"}))
        peer.route("GET", "/api/2.1/unity-catalog/catalogs", (200, {"catalogs": []}))
        cases: List[tuple[str, str, Callable[[], Any], Dict[str, Any]]] = []
        try:
            from databricks.sdk import WorkspaceClient

            w = WorkspaceClient(host=peer.url, token="dapi0123456789abcdef0123456789abcdef")
            cases.append(("databricks-sdk current_user.me()", "databricks_sdk",
                          w.current_user.me, {}))
        except Exception as exc:
            out.skip(group, "databricks-sdk", f"{type(exc).__name__}: {exc}"[:200])
        import httpx
        import requests

        session = requests.Session()
        url = f"{peer.url}/api/2.1/unity-catalog/catalogs"
        cases.append(("requests Session.get (host listed in rest_hosts)", "requests",
                      lambda: session.get(url).content, {"rest_hosts": ["127.0.0.1"]}))
        hclient = httpx.Client()
        cases.append(("httpx Client.get (host listed in rest_hosts)", "httpx",
                      lambda: hclient.get(url).content, {"rest_hosts": ["127.0.0.1"]}))
        for bench, name, fn, extra in cases:
            ours = Variant("ours, spans on (API only)", fn, _ours(True, name, **extra), _off)
            # check once: the peer must see our token
            before = len(peer.requests)
            ours.setup()  # type: ignore[misc]
            fn()
            _off()
            seen = [r.user_agent or "" for r in peer.requests[before:]]
            if not any(UA in s for s in seen):
                out.skip(group, bench, f"peer did not see our tag: {seen[-1:]!r}")
                continue
            samples = interleave([Variant("unpatched", fn), ours], rounds, inner)
            out.emit(compare(group, bench, samples, "unpatched", inner),
                     f"== {group}: {bench} (local HTTP peer)")
        session.close()
        hclient.close()


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    sdk = args.otel == "sdk"
    if sdk:
        sdk_providers()
    os.environ.pop("PGAPPNAME", None)
    postgres(out, sdk, args.quick)
    if not sdk:
        http(out, args.quick)
    out.save()


if __name__ == "__main__":
    main()
