"""8. The connection report (``ua_autotag.report()``): what it costs per connection when on.

The report's audit hook cannot be removed once installed (``sys.addaudithook``), so "off"
here is the hook installed with its flag off (``report(enabled=False)``): what a process
pays after the report was asked for and then stopped; a process that never asks for it
has no hook at all (nothing to measure). Rows, spans off:

* **real connection**: ``socket.create_connection`` + ``close`` to a loopback listener,
  report on vs off: to a host that is neither Databricks nor PostgreSQL (the common case:
  looked at and ignored), and to a host listed as a Databricks host, opened outside any
  integration (the untagged case: name look-up, frame walk, a row). Target <= 2 us per
  connection.
* **control**: another audit hook doing 1 us of plain Python (dict reads; the size is
  calibrated in a warm loop in the run) at ``socket.connect``, report off, against the
  same connection: what any hook's work costs right after the kernel's socket work,
  with cold caches, for reading the two rows above against.
* **the hook alone**: the two events of one connection (``socket.getaddrinfo``,
  ``socket.connect``) handed to the hook directly, vs an empty two-argument function (any
  hook's floor), for a host that is neither Databricks nor PostgreSQL (ignored), a
  Databricks host opened outside any integration (a row), and one opened inside a tagging
  layer (attached to its handle).
* **every other audited event** (``open``, ``import``, ``sys._getframe``, ...): the hook
  with the report on vs the empty function.
* **a tagged connect** (psycopg2's real patch point, network cut, as in ``cases.py``) and
  a **tagged request** (``requests`` adapter, Databricks host, network cut): with the
  report on every tagging call opens a report-only handle (no span records here).

Every row twice: wall-clock time (the harness's clock: what the application waits) and
the process's CPU time (``time.process_time_ns``, user + system: what it pays, without
the time other jobs of a loaded machine held the cores). Paired and interleaved alike.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any, List

import ua_autotag
from harness import HERE, UA, Output, Variant, arguments, compare, interleave


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    rounds, inner = (6, 200) if args.quick else (30, 1000)
    sys.path.insert(0, str(HERE))
    import cases

    us = 1e-6
    built: List[cases.Case] = []
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    port = listener.getsockname()[1]
    try:
        pg = cases._psycopg2()
        rest = cases._requests(cases.DATABRICKS_URL, True)
        built += [pg, rest]
        ua_autotag.instrument(
            UA, integrations=["psycopg2", "requests"], spans=False, rest_hosts=["localhost"]
        )
        from ua_autotag import ledger, telemetry

        report = ua_autotag.report(format=None)

        def on() -> None:
            ledger.enable()

        def off() -> None:
            ledger.disable()

        def connect_to(host: str) -> Any:
            def connect() -> None:
                sock = socket.create_connection((host, port))
                sock.close()
                accepted, _ = listener.accept()
                accepted.close()

            return connect

        # the control: a second audit hook (it cannot be removed either: a flag check on
        # every event from here on, for every variant alike)
        table = {i: i for i in range(64)}
        control = {"on": False, "n": 100}

        def plain_work() -> int:
            total = 0
            for i in range(control["n"]):
                total += table[i & 63]
            return total

        def control_hook(event: str, args: Any) -> None:
            if control["on"] and event == "socket.connect":
                plain_work()

        sys.addaudithook(control_hook)

        def warm_cost() -> float:
            best = float("inf")
            for _ in range(20):
                start = time.perf_counter_ns()
                for _ in range(1000):
                    plain_work()
                best = min(best, (time.perf_counter_ns() - start) / 1000)
            return best * 1e-9

        def control_on() -> None:
            off()
            control["on"] = True

        def control_off() -> None:
            control["on"] = False

        connect = connect_to("localhost")  # listed as a Databricks host
        connect_other = connect_to("127.0.0.1")  # not listed, not a PostgreSQL port

        # sanity: the report sees the untagged connection when on, not when off
        ledger.reset()
        connect()
        assert report.untagged == 1, report.rows()
        connect_other()
        assert report.untagged == 1, report.rows()
        off()
        connect()
        assert report.untagged == 1, report.rows()
        on()
        assert UA in pg.fn() and report.tagged == 1, report.rows()
        ledger.reset()

        n = max(20, inner // 10)
        # the control's size: 1 us of plain Python in a warm loop (calibrated here)
        control["n"] = max(1, round(100 * 1e-6 / warm_cost()))
        control_warm = warm_cost()
        control_name = f"control: {control_warm * 1e6:.2f} us of plain Python in a hook"
        budget = ("added <= 2 us per connection", lambda r: r.diff_median <= 2 * us)
        # wall-clock time (what the application waits), then the process's CPU time
        # (user + system: what it pays, without the time other jobs of a loaded machine
        # had the core), each interleaved and paired as everywhere else
        clocks = (("", time.perf_counter_ns), (", CPU time", time.process_time_ns))
        for clock, timer in clocks:
            samples = interleave(
                [
                    Variant("report off, 127.0.0.1", connect_other, off),
                    Variant("report on, other host (ignored)", connect_other, on),
                    Variant("report off, localhost", connect, off),
                    Variant("report on, untagged Databricks host (a row)", connect, on),
                    Variant(control_name, connect, control_on, control_off),
                ],
                rounds, n, per_call=True, timer=timer,
            )  # fmt: skip
            off()
            ledger.reset()
            rows = []
            for base, variant in (
                ("report off, 127.0.0.1", "report on, other host (ignored)"),
                ("report off, localhost", "report on, untagged Databricks host (a row)"),
            ):
                pair = {base: samples[base], variant: samples[variant]}
                rows += compare("report", f"socket.create_connection + close, loopback{clock}",
                                pair, base, n, {variant: budget})  # fmt: skip
            pair = {"report off, localhost": samples["report off, localhost"],
                    control_name: samples[control_name]}  # fmt: skip
            rows += compare(
                "report", f"socket.create_connection + close, loopback{clock}", pair,
                "report off, localhost", n,
                notes={control_name: "what Python work costs any audit hook at connect"},
            )  # fmt: skip
            out.emit(rows, f"== report: a real loopback connection, per connection{clock}")

        hook = ledger._audit
        sock = socket.socket()
        other = (("example.org", 443, 0, 1, 6), (sock, ("93.184.216.34", 443)))
        databricks = (("localhost", port, 0, 1, 6), (sock, ("127.0.0.1", port)))

        def floor(event: str, args: Any) -> None:
            pass

        def events(fn: Any, which: Any) -> Any:
            lookup, connected = which

            def run() -> None:
                fn("socket.getaddrinfo", lookup)
                fn("socket.connect", connected)

            return run

        handle: Any = None

        def inside() -> None:
            token = telemetry._CURRENT.set(handle)
            try:
                hook("socket.getaddrinfo", databricks[0])
                hook("socket.connect", databricks[1])
            finally:
                telemetry._CURRENT.reset(token)
                handle.sockets = ()

        from ua_autotag.engine import attribution
        from ua_autotag.telemetry import ReportHandle

        # the handle a tagging layer opens while the report is on and no span records
        handle = ReportHandle("requests", attribution.current(), "http")
        handle.finish(None)  # out of the context again (nothing tagged: nothing recorded)
        on()
        for clock, timer in clocks:
            samples = interleave(
                [
                    Variant("empty hook (floor)", events(floor, other)),
                    Variant("report on, other host (ignored)", events(hook, other), on),
                    Variant("report on, Databricks host, untagged (a row)",
                            events(hook, databricks), on),
                    Variant("report on, inside a tagging layer", inside, on),
                ],
                rounds, inner, timer=timer,
            )  # fmt: skip
            ledger.reset()
            out.emit(
                compare("report", f"the hook's work for one connection (2 events){clock}",
                        samples, "empty hook (floor)", inner, {
                            "report on, other host (ignored)": budget,
                            "report on, Databricks host, untagged (a row)": budget,
                            "report on, inside a tagging layer": budget,
                        }),
                f"== report: the audit hook alone, per connection{clock}",
            )  # fmt: skip

        other_event = ("/etc/hosts", "r", 0)
        samples = interleave(
            [
                Variant("empty hook (floor)", lambda: floor("open", other_event)),
                Variant("report on", lambda: hook("open", other_event), on),
                Variant("report off (flag)", lambda: hook("open", other_event), off),
            ],
            rounds, inner,
        )  # fmt: skip
        out.emit(
            compare("report", "any other audited event (open)", samples, "empty hook (floor)",
                    inner),
            "== report: every other audited event",
        )  # fmt: skip

        for case, (clock, timer) in ((c, k) for c in (pg, rest) for k in clocks):
            samples = interleave(
                [
                    Variant("ours, report off", case.fn, off),
                    Variant("ours, report on", case.fn, on),
                ],
                rounds, max(10, inner // case.weight), timer=timer,
            )  # fmt: skip
            ledger.reset()
            out.emit(
                compare("report", f"{case.bench}{clock}", samples, "ours, report off",
                        max(10, inner // case.weight), {"ours, report on": budget}),
                f"== report: {case.bench}, report on vs off{clock}",
            )  # fmt: skip
        off()
    finally:
        ua_autotag.uninstrument()
        listener.close()
        for case in built:
            if case.cleanup is not None:
                case.cleanup()
    out.save()


if __name__ == "__main__":
    main()
