"""1. Wrapper cost per call, isolated from I/O (issue 9 §1, issue 7 spans variants).

Run three times by the runner, because the OpenTelemetry providers can be set only
once per process: ``--otel api`` (no SDK: the API's non-recording spans),
``--otel sdk`` (SDK ``TracerProvider``, no processor, no exporter) and
``--otel sdk-metrics`` (that plus the SDK ``MeterProvider`` with no reader, so our
``ua_autotag.connections`` counter records as well).

Synthetic integration (``noio``, declared like a real one, wrapped by the real
registry through the real post-import hook) around a client that does no I/O:

* ``unpatched``                  the original function
* ``closure pass-through``       ``def w(*a, **k): return f(*a, **k)``: any wrapper's floor
* ``closure tagging``            a hand-written closure doing our tagging work, no wrapt
* ``wrapt pass-through``         a bare ``wrapt.FunctionWrapper``: wrapt's own floor
* ``ours, not instrumented``     our wrapper left in place after the settings are gone
* ``ours, spans off``            ``spans=False``
* ``ours, spans on (API only)``  / ``(SDK, no exporter)``
* ``otel span floor (SDK)``      ``tracer.start_span(); span.end()`` alone

Then every real integration present in ``src/ua_autotag/integrations`` whose tagging
step can run without the network (``cases.py``): unpatched vs ours, same process.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any, Callable, Dict, List, Optional

import wrapt

import ua_autotag
from harness import (
    HERE,
    UA,
    Output,
    Row,
    Variant,
    active,
    arguments,
    compare,
    interleave,
    median_ci,
    quartiles,
    sdk_providers,
    set_settings,
    use_settings,
)
from ua_autotag.engine import attribution
from ua_autotag.merge.tokens import merge_tokens


def _ratio_row(group: str, bench: str, variant: str, ours: List[float], floor: List[float],
               inner: int, target: Optional[str] = None,
               limit: Optional[float] = None) -> Row:
    """A row comparing two per-round cost series (each already minus its own baseline of
    the same round): the median cost of ``ours`` and the median ratio ours / floor."""
    ratios = [a / b for a, b in zip(ours, floor) if b > 0]
    q1, med, q3 = quartiles(ours)
    r1, rm, r3 = quartiles(ratios)
    fm = statistics.median(floor)
    return Row(
        group=group, bench=bench, variant=variant, baseline="SDK span floor",
        median=med, q1=q1, q3=q3, base_median=fm, diff_median=med - fm, diff_q1=q1 - fm,
        diff_q3=q3 - fm, ratio_median=rm, ratio_q1=r1, ratio_q3=r3, rounds=len(ratios),
        inner=inner, ratio_ci=median_ci(ratios), target=target,
        met=None if limit is None else rm <= limit, samples=ours, base_samples=floor,
    )


def _floor(samples: Dict[str, List[float]]) -> List[float]:
    """The SDK's bare span per round: ``start_span().end()`` minus the unpatched call."""
    return [a - b for a, b in zip(samples["otel span floor (SDK)"], samples["unpatched"])]


def span_ratio(group: str, samples: Dict[str, List[float]], spans_on: str, inner: int) -> Row:
    """Our span's own cost over the SDK's bare span, paired per round (issue 16 §4).

    Ours: ``spans on`` minus ``spans off`` of the same round (the wrapper and tagging
    cancel out, what is left is starting, filling and ending our span, plus the
    counter with the metrics SDK). The SDK's: ``start_span().end()`` minus the
    unpatched call of the same round.
    """
    ours = [a - b for a, b in zip(samples[spans_on], samples["ours, spans off"])]
    return _ratio_row(group, "connect span vs the SDK's start_span().end()",
                      "our span (spans on - spans off)", ours, _floor(samples), inner,
                      "<= 1.5x the SDK span", 1.5)


def sdk_attribute_ratio(group: str, samples: Dict[str, List[float]], inner: int) -> Row:
    """The SDK's span with our attributes over its bare span, paired per round: what
    any span carrying those attributes costs before a line of ours runs."""
    same = [a - b for a, b in
            zip(samples["otel span, our attributes (SDK)"], samples["unpatched"])]
    return _ratio_row(group, "SDK span with our attributes vs its bare span",
                      "otel span, our attributes (SDK)", same, _floor(samples), inner)


def passthrough_variant(case: Any) -> Variant:
    """A plain closure pass-through on the case's patch point, ours off: what any wrapper
    there costs (for Spark's ``SparkConnectClient.__init__`` it is most of ours)."""
    owner, attribute = case.point
    original = owner.__dict__[attribute]

    def passthrough(*a: Any, **k: Any) -> Any:
        return original(*a, **k)

    def install() -> None:
        ua_autotag.uninstrument()
        setattr(owner, attribute, passthrough)

    def restore() -> None:
        setattr(owner, attribute, original)
        if case.after is not None:
            case.after()

    return Variant("closure pass-through on the patch point", case.fn, install, restore)


def main() -> None:
    args = arguments(__doc__ or "")
    out = Output(args.json_out)
    sdk = args.otel != "api"
    rounds, inner = (6, 300) if args.quick else (40, 2000)
    if sdk:
        sdk_providers(with_metrics=args.otel == "sdk-metrics")
    sys.path.insert(0, str(HERE))
    import noio_integration

    noio_integration.register()
    import noio_client

    original: Callable[..., Any] = noio_client.connect
    ua_autotag.instrument(UA, integrations=["noio"], spans=True)
    patched = noio_client.connect
    assert patched is not original and patched.__wrapped__ is original
    assert patched(headers={"User-Agent": "app/1"})["User-Agent"] == f"app/1 {UA}"

    def closure_pass(*a: Any, **k: Any) -> Any:
        return original(*a, **k)

    def closure_tag(*a: Any, **k: Any) -> Any:
        settings = attribution.current()
        if settings is None:
            return original(*a, **k)
        headers = dict(k.get("headers") or {})
        ours = settings.user_agent.render("http-user-agent")
        headers["User-Agent"] = merge_tokens(headers.get("User-Agent"), ours, settings.mode)
        return original(*a, **{**k, "headers": headers})

    bare = wrapt.FunctionWrapper(original, lambda w, i, a, k: w(*a, **k))
    headers = {"User-Agent": "app/1"}
    kw = {"host": "127.0.0.1", "port": 443, "headers": headers}
    on = active()
    off = set_settings(spans=False)
    use_settings(on)

    def use(settings: Any) -> Callable[[], None]:
        return lambda: use_settings(settings)

    restore = use(on)
    spans_on = {
        "api": "ours, spans on (API only)",
        "sdk": "ours, spans on (SDK, no exporter)",
        "sdk-metrics": "ours, spans on (SDK + metrics SDK)",
    }[args.otel]
    variants = [
        Variant("unpatched", lambda: original(**kw)),
        Variant("ours, spans off", lambda: patched(**kw), use(off), restore),
        Variant(spans_on, lambda: patched(**kw)),
    ]
    if sdk:
        from opentelemetry import trace

        tracer = trace.get_tracer("bench")
        kind = trace.SpanKind.CLIENT

        def span_floor() -> None:
            tracer.start_span("connect", kind=kind).end()

        # the SDK alone given what our span carries (name, kind, the same attributes at
        # start): the part of our span's cost that is the SDK's, not ours
        from ua_autotag import telemetry

        same = {
            **telemetry._start_attributes("noio", "noio", on, None),
            "server.address": "127.0.0.1",
            "server.port": 443,
            "user_agent.original": f"app/1 {UA}",
        }

        def span_same() -> None:
            tracer.start_span("connect 127.0.0.1:443", kind=kind, attributes=same).end()

        variants.append(Variant("otel span floor (SDK)", span_floor))
        variants.append(Variant("otel span, our attributes (SDK)", span_same))
    else:
        variants += [
            Variant("closure pass-through", lambda: closure_pass(**kw)),
            Variant("closure tagging", lambda: closure_tag(**kw)),
            Variant("wrapt pass-through", lambda: bare(**kw)),
            Variant("ours, not instrumented", lambda: patched(**kw), use(None), restore),
        ]
    samples = interleave(variants, rounds, inner)
    us = 1e-6
    targets: Dict[str, Any] = {
        "ours, spans off": ("added <= 2 us", lambda r: r.diff_median <= 2 * us),
    }
    if sdk:
        targets[spans_on] = ("added <= 12 us", lambda r: r.diff_median <= 12 * us)
    notes = {
        "ours, not instrumented": "wrapper still installed, settings gone (after uninstrument "
        "a chained wrapper that cannot be removed degrades to this)",
    }
    group = "wrapper" if not sdk else f"wrapper-{args.otel}"
    out.emit(
        compare(group, "noio connect()", samples, "unpatched", inner, targets, notes),
        f"== {group}: no-I/O connect(), per call ({args.otel})",
    )
    if sdk:
        rows = compare(group, "noio connect() vs the SDK span floor", samples,
                       "otel span floor (SDK)", inner)
        out.emit(
            [r for r in rows if r.variant == spans_on],
            f"== {group}: ours (spans on) beyond the SDK's own span floor",
        )
        out.emit(
            [span_ratio(group, samples, spans_on, inner)],
            f"== {group}: our connect span (spans on - spans off) / the SDK's "
            "start_span().end() (issue 16 §4)",
        )
        out.emit(
            [sdk_attribute_ratio(group, samples, inner)],
            f"== {group}: the SDK alone, given our span's {len(same)} attributes at start, "
            "/ its bare start_span().end() (the floor of the row above)",
        )
    if not sdk:
        rows = compare(group, "noio connect() vs spans off", samples, "ours, spans off", inner)
        out.emit(
            [r for r in rows if r.variant == spans_on],
            "== wrapper: cost of spans on with no SDK, beside spans off (issue 7)",
        )
        rows = compare(group, "noio connect() vs wrapt floor", samples, "wrapt pass-through", inner)
        out.emit(
            [r for r in rows if r.variant == "ours, spans off"],
            "== wrapper: ours (spans off) beyond wrapt's own pass-through",
        )

    import cases

    if args.otel == "sdk-metrics":  # the counter's cost is shown on the synthetic call
        ua_autotag.uninstrument()
        out.save()
        return
    for case in cases.collect(out, group):
        variants = [
            Variant("unpatched", case.fn, case.off, case.after),
            Variant("ours, spans off", case.fn, case.on(False), case.after),
            Variant(spans_on, case.fn, case.on(True), case.after),
        ]
        if case.point is not None:
            variants.append(passthrough_variant(case))
        n = max(10, inner // case.weight)
        # heavy calls (a real connect path, ~100-300 us, whose own spread is larger than
        # the few us we add): more rounds, so the median of the paired differences settles
        # and each sample is its median call, not the mean: one slow construction (a
        # scheduler hiccup, an allocator spike) would otherwise move the whole sample
        heavy = case.weight >= 40
        samples = interleave(variants, rounds * max(1, case.weight // 20), n, per_call=heavy)
        if case.ops > 1:  # per connect, not per batch
            samples = {k: [v / case.ops for v in vs] for k, vs in samples.items()}
            n *= case.ops
        ua_autotag.uninstrument()
        budget = case.budget_us
        case_targets: Dict[str, Any] = {
            "ours, spans off": (
                f"added <= {budget:g} us (issue 16)",
                lambda r, b=budget: r.diff_median <= b * us,
            ),
        }
        if sdk:
            case_targets[spans_on] = targets[spans_on]
        rows = compare(group, case.bench, samples, "unpatched", n, case_targets)
        for row in rows:
            row.note = case.note
        out.emit(rows, f"== {group}: {case.bench} ({args.otel})")
    ua_autotag.uninstrument()
    out.save()


if __name__ == "__main__":
    main()
