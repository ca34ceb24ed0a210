"""``ua-autotag doctor``: what ua-autotag would do here, and where each setting came from.

Sections: the configuration (value, options and the source of each), the environment
as set, per-carrier validation, per integration (installed version, supported range,
trigger, what it wraps, or why not; ``partial`` when a client loaded here lacks some
targets), the runtime hooks the launcher would add, and the products registered in
this process (``--import MODULE`` loads a library product that registers itself with
``instrument(..., packages=[__name__])``). Never prints secrets. The ``ua-autotag``
process itself is not instrumented from the environment.

It is also a library's CI check: ``doctor --import acme_dateng`` exits 0 when every
registered product's value fits every carrier its integrations use and no package is
claimed twice (no process default is needed: a library must not set one), 1 with the
reasons otherwise; naming advice never changes the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import __version__
from ..settings import VAR, Settings
from .common import CliError, Command, one_line, resolve_args, scrubbed

__all__ = [
    "COMMANDS",
    "doctor_report",
    "import_products",
    "naming_advice",
    "problems",
    "render",
]

_SHOWN_EXPORTS = ("PGAPPNAME", "SPARK_CONNECT_USER_AGENT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS")
#: states only a client loaded in this process produces (the rest doctor computes itself)
_LIVE_STATES = ("patched", "partial", "failed", "unsupported")


# --------------------------------------------------------------------------- report


def _header() -> Dict[str, Any]:
    from .. import bootstrap

    return {
        "version": __version__,
        "python": sys.executable,
        "launcher_bootstrap": bootstrap.DIRECTORY,
        "launcher_bootstrap_problem": bootstrap.problem(),
        "pth_activation": bootstrap.installed(),
    }


def _configuration(
    env: Mapping[str, str], user_agent: Optional[str]
) -> Tuple[Dict[str, Any], Optional[Settings]]:
    from ..settings import has_user_agent

    if user_agent is None and not has_user_agent(env):
        return {
            "status": "no process default",
            "message": "no UA_AUTOTAG_USER_AGENT: right for a library product (it registers "
            "with packages=[__name__], see products below); an application that owns its "
            "process sets UA_AUTOTAG_USER_AGENT or runs under `ua-autotag run --user-agent ...`",
        }, None
    try:
        settings = resolve_args(argparse.Namespace(user_agent=user_agent), env)
    except CliError as exc:
        return {"status": "invalid", "error": one_line(str(exc))}, None
    return {
        "status": "ok",
        "user_agent": str(settings.user_agent),
        "mode": settings.mode,
        "spans": settings.spans,
        "strict": settings.strict,
        "disabled": sorted(settings.disabled),
        "rest_hosts": list(settings.rest_hosts),
        "sources": dict(sorted(settings.sources.items())),
    }, settings


def _carriers(
    settings: Optional[Settings], in_use: Optional[Iterable[str]] = None
) -> List[Dict[str, Any]]:
    """Per carrier: does the value of ``settings`` fit, and is the carrier used (``in_use``,
    default: the carriers of the integrations ``settings`` enables)."""
    from ..merge import CARRIERS
    from ..settings import carriers_in_use
    from ..value import ConfigurationError

    if settings is None:
        in_use = frozenset()
    elif in_use is None:
        in_use = carriers_in_use(settings)
    rows = []
    for name, carrier in CARRIERS.items():
        row: Dict[str, Any] = {
            "carrier": name,
            "description": carrier.description,
            "limit_bytes": carrier.max_bytes,
            "in_use": name in in_use if settings is not None else None,
        }
        if settings is not None:
            row["bytes"] = len(str(settings.user_agent).encode())
            try:
                row.update(value=settings.user_agent.render(name), status="ok")
            except ConfigurationError as exc:
                row.update(
                    status="too long" if carrier.max_bytes else "invalid", error=one_line(str(exc))
                )
        rows.append(row)
    return rows


def _patch_roles(patch: Any) -> List[str]:
    if patch.spans_only:
        return ["connect span, only while an OpenTelemetry SDK is loaded"]
    if patch.fallback:
        return ["fallback: tags only if a tagging patch is missing"]
    roles = ["tags"] if patch.tags else []
    if patch.span:
        roles.append("connect span")
    pin = {
        "create": "pins its creator",
        "use": "connects as its pin",
        "fill": "fills the pool as its creator, else as customer code",
    }.get(patch.pin or "")
    return roles + ([pin] if pin else [])


def _patch_labels(patches: Iterable[Any]) -> List[str]:
    """One line per wrapped attribute (several patches of one attribute share a wrapper)."""
    merged: Dict[str, List[Any]] = {}
    for patch in patches:
        merged.setdefault(f"{patch.module}.{patch.path}", []).append(patch)
    labels = []
    for name, group in merged.items():
        roles = [r for p in group for r in _patch_roles(p)]
        kind = (
            " (essential)"
            if any(p.essential for p in group)
            else " (optional)"
            if all(p.optional for p in group)
            else ""
        )
        whens = sorted({p.when for p in group if p.when})
        when = f" (when {', '.join(whens)} is imported)" if whens else ""
        shown = f" [{'; '.join(dict.fromkeys(roles))}]" if roles else ""
        labels.append(f"{name}{shown}{kind}{when}")
    return labels


def _setup_label(setup: Any) -> Optional[str]:
    """What an integration's ``setup`` does, from its docstring's first line."""
    if setup is None:
        return None
    doc = (getattr(setup, "__doc__", None) or "").strip().split("\n\n")[0]
    what = " ".join(doc.split()).rstrip(".") or "extra set-up"
    return f"{what} ({getattr(setup, '__module__', '?')}.{getattr(setup, '__qualname__', '?')})"


def _integration(
    name: str, settings: Optional[Settings], live: Any, registered: bool = False
) -> Dict[str, Any]:
    from ..catalog import CATALOG, module_for
    from ..engine import patcher

    entry = CATALOG[name]
    row: Dict[str, Any] = {
        "integration": name,
        "trigger": entry.trigger,
        "carrier": entry.carrier,
        "module": module_for(name),
    }
    try:
        spec = patcher.load_spec(name)
    except Exception as exc:
        return {**row, "status": "unavailable", "reason": one_line(f"{type(exc).__name__}: {exc}")}
    version = patcher.installed_version(spec.distributions)
    row.update(
        distributions=list(spec.distributions),
        installed=version,
        supported=spec.supported,
        patches=_patch_labels(spec.patches),
        setup=_setup_label(spec.setup),
    )
    row.update(_state(name, spec, version, settings, live, registered))
    return row


def _state(
    name: str,
    spec: Any,
    version: Optional[str],
    settings: Optional[Settings],
    live: Any,
    registered: bool,
) -> Dict[str, Any]:
    from ..engine import patcher

    if live is not None and live.state in _LIVE_STATES:  # a client loaded here (--import)
        return {"status": live.state, "reason": live.reason, "missing": list(live.missing)}
    out_of_range = patcher.version_supported(spec, version) if version else None
    if version is None:
        return {
            "status": "not installed",
            "reason": f"{' / '.join(spec.distributions)} not installed",
        }
    if out_of_range is not None:
        return {"status": "unsupported", "reason": out_of_range}
    if settings is None:
        if registered and live is not None:  # no default, products registered (--import)
            return {
                "status": "would patch" if live.state == "waiting" else live.state,
                "reason": live.reason,
            }
        return {"status": "would patch (once configured)"}
    if not settings.enabled(name):
        return {"status": "disabled", "reason": f"by {settings.sources.get('disabled')}"}
    return {"status": "would patch", "reason": f"when {spec.trigger} is imported"}


def _runtimes(env: Mapping[str, str], settings: Optional[Settings]) -> List[Dict[str, Any]]:
    from .. import runtimes

    disabled = settings.disabled if settings is not None else ()
    value = str(settings.user_agent) if settings is not None else ""
    return runtimes.describe(env, disabled, value=value)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch not in "_.-")


def naming_advice(user_agent: str, packages: Iterable[str]) -> List[str]:
    """The partner guide's rule for a library product: its top-level import package names
    the isv and the product (``acmepartner_datengproduct``, ``acmepartner.datengproduct``;
    case, ``_``, ``.`` and ``-`` aside). One line of advice per package that does not."""
    from ..value import UserAgent

    ua = UserAgent.parse(user_agent)
    want = _norm(ua.isv) + _norm(ua.product)
    advice = []
    for package in packages:
        parts = package.split(".")
        if any(_norm("".join(parts[:i])) == want for i in range(1, len(parts) + 1)):
            continue
        advice.append(
            f"package {package!r} of {ua} does not name its isv and product: the partner "
            f"guide asks a library product's top-level import package to be "
            f"<isv>_<product> or <isv>.<product>, e.g. {ua.isv.lower()}_{ua.product.lower()}"
        )
    return advice


def _own_carriers(settings: Settings, env: Mapping[str, str]) -> FrozenSet[str]:
    """The carriers a product's own ``instrument()`` call enables.

    The environment's ``UA_AUTOTAG_DISABLED_INTEGRATIONS`` is the customer's kill switch,
    not the product's choice: a value that fits only because it is set here would fail
    at import wherever it is not, so the check ignores it.
    """
    from ..catalog import CATALOG

    disabled = set(settings.disabled)
    if "argument" not in settings.sources.get("disabled", ""):
        raw = env.get(VAR["disabled"], "")
        disabled -= {d.strip().lower() for d in raw.split(",")}
    only = settings.integrations
    return frozenset(
        carrier
        for name, entry in CATALOG.items()
        if (carrier := entry.carrier) is not None
        and "all" not in disabled
        and name not in disabled
        and (only is None or name in only)
    )


def _products(env: Mapping[str, str]) -> Tuple[Dict[str, Any], Any]:
    """Who tags in this process (``status()``), and the status rows themselves."""
    import ua_autotag

    from ..engine import attribution

    state = ua_autotag.status()
    settings_of = {
        str(p.settings.user_agent): p.settings
        for p in attribution.products()
        if p.settings is not None
    }
    products = []
    for info in state.products:
        row = info.as_dict()
        settings = settings_of.get(info.user_agent)
        if settings is not None:
            carriers = _carriers(settings, _own_carriers(settings, env))
            row["carriers"] = carriers
            row["problems"] = [
                f"{c['carrier']}: {c['error']}"
                for c in carriers
                if c["in_use"] and c["status"] != "ok"
            ]
        row["advice"] = naming_advice(info.user_agent, info.packages)
        products.append(row)
    default = state.default.as_dict() if state.default is not None else None
    return {"default": default, "products": products}, state


def problems(report: Dict[str, Any]) -> List[str]:
    """What makes ``doctor`` exit 1: an invalid configuration, a module whose product was
    refused at import (a value that does not fit a carrier, a package claimed twice), a
    product's value that does not fit a carrier it uses; or, with ``--import``, nothing
    registered at all. Naming advice is not a problem."""
    found = []
    conf = report["configuration"]
    if conf["status"] == "invalid":
        found.append(f"configuration: {conf['error']}")
    found.extend(report.get("refused", []))
    products = report["products"]
    for row in products["products"]:
        found.extend(f"{row['user_agent']}: {p}" for p in row.get("problems", []))
    imported = report.get("imported", [])
    if imported and not products["products"] and products["default"] is None and not found:
        found.append(
            f"--import {', '.join(imported)}: no product registered (a library product calls "
            "ua_autotag.instrument(..., packages=[__name__]) in its __init__.py)"
        )
    return found


def doctor_report(
    environ: Mapping[str, str],
    user_agent: Optional[str] = None,
    imported: Sequence[str] = (),
    refused: Sequence[str] = (),
) -> Dict[str, Any]:
    """Everything ``doctor`` shows, as plain data (the --json output), secrets scrubbed.

    ``imported`` / ``refused``: the ``--import`` modules and what :func:`import_products`
    reported about them.
    """
    from ..catalog import CATALOG

    env = dict(environ)
    conf, settings = _configuration(env, user_agent)
    products, live = _products(env)
    registered = bool(products["products"])
    report: Dict[str, Any] = {
        "ua_autotag": _header(),
        "environment": {
            k: v
            for k, v in sorted(env.items())
            if k.startswith("UA_AUTOTAG_") or k in _SHOWN_EXPORTS
        },
        "configuration": conf,
        "carriers": _carriers(settings),
        "integrations": [_integration(n, settings, live.get(n), registered) for n in CATALOG],
        "runtimes": _runtimes(env, settings),
        "products": products,
        "imported": list(imported),
        "refused": list(refused),
    }
    report["problems"] = problems(report)
    clean: Dict[str, Any] = scrubbed(report)
    return clean


def import_products(modules: Sequence[str]) -> List[str]:
    """Import each ``--import`` module here (a library product registers at import).

    Returns one line per module whose ``instrument()`` refused its configuration (a
    value that does not fit a carrier, a package another product claims): that is
    what the check is for. Any other import failure is a :class:`CliError`.
    """
    import importlib

    from ..value import ConfigurationError

    refused = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ConfigurationError as exc:
            refused.append(f"--import {name}: instrument() refused it: {exc}")
        except Exception as exc:
            raise CliError(f"--import {name}: {type(exc).__name__}: {exc}") from None
    return refused


# --------------------------------------------------------------------------- text


def _render_header(report: Dict[str, Any]) -> List[str]:
    info = report["ua_autotag"]
    return [
        f"ua-autotag {info['version']}  (python: {info['python']})",
        f"launcher bootstrap: {info['launcher_bootstrap']} "
        + (
            f"(not put on PYTHONPATH: {info['launcher_bootstrap_problem']})"
            if info["launcher_bootstrap_problem"]
            else "(owner and modes checked up to /)"
        ),
        f".pth activation: {', '.join(info['pth_activation']) or 'not installed'}",
    ]


def _render_configuration(report: Dict[str, Any]) -> List[str]:
    conf = report["configuration"]
    out = ["", f"configuration: {conf['status']}"]
    if conf["status"] != "ok":
        return [*out, f"  {conf.get('error') or conf.get('message')}"]
    for key in ("user_agent", "mode", "spans", "strict", "disabled", "rest_hosts"):
        value = conf[key]
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        out.append(f"  {key:<11} {value!s:<40} ({conf['sources'].get(key, 'default')})")
    if "version" in conf["sources"]:
        out.append(f"  {'version':<11} {'':<40} ({conf['sources']['version']})")
    return out


def _render_environment(report: Dict[str, Any]) -> List[str]:
    if not report["environment"]:
        return []
    return ["environment:", *(f"  {k}={v}" for k, v in report["environment"].items())]


def _carrier_lines(rows: List[Dict[str, Any]], indent: str) -> List[str]:
    out = []
    for row in rows:
        limit = f"<= {row['limit_bytes']} bytes" if row["limit_bytes"] else "no byte limit"
        state = row.get("status", "-")
        if "bytes" in row:
            state += f" ({row['bytes']} bytes, {limit})"
        if row.get("error"):
            state += f": {row['error']}"
        used = "" if row["in_use"] in (None, True) else "  [not used: integrations disabled]"
        out.append(f"{indent}{row['carrier']:<17} {state}{used}")
    return out


def _render_carriers(report: Dict[str, Any]) -> List[str]:
    if report["configuration"]["status"] != "ok":
        return ["", "carriers: no process default to check (each product's are below)"]
    return ["", "carriers (the process default):", *_carrier_lines(report["carriers"], "  ")]


def _render_integration(row: Dict[str, Any]) -> List[str]:
    head, pad = f"  {row['integration']:<19}", " " * 21
    if row["status"] == "unavailable":
        return [f"{head}unavailable: {row['reason']}"]
    out = [
        f"{head}{row['status']}{': ' + row['reason'] if row.get('reason') else ''}",
        f"{pad}installed {row['installed'] or '-'}, supported {row['supported']}, "
        f"trigger {row['trigger']}, carrier {row['carrier'] or '- (pins engines/pools)'}",
    ]
    out.extend(f"{pad}  wraps {patch}" for patch in row["patches"])
    if row.get("setup"):
        out.append(f"{pad}  also: {row['setup']}")
    return out


def _render_integrations(report: Dict[str, Any]) -> List[str]:
    out = [
        "",
        "integrations (a missing target that is not essential leaves it partial: "
        "tagged through the rest):",
    ]
    for row in report["integrations"]:
        out.extend(_render_integration(row))
    return out


def _render_runtimes(report: Dict[str, Any]) -> List[str]:
    out = ["", "runtime hooks `ua-autotag run` adds for non-Python children:"]
    for row in report["runtimes"]:
        state = "would add" if row["would_add"] else "not added"
        reason = f" ({row['reason']})" if row.get("reason") else ""
        out.append(f"  {row['runtime']:<19}{state}{reason}")
        if row["would_add"] and row.get("fragment"):
            out.append(f"  {'':<19}  {row['variable']} += {row['fragment']}")
        if row["would_add"] and row.get("trusted"):
            out.append(f"  {'':<19}  trusted: {row['trusted']}")
        out.append(f"  {'':<19}  covers {row['covers']}")
    return out


def _render_products(report: Dict[str, Any]) -> List[str]:
    products = report["products"]
    default = products["default"]
    out = ["", "products registered in this process:"]
    out.append(
        f"  process default: {default['user_agent']} (set at {default['origin']})"
        if default
        else "  process default: none in doctor's own process (the configuration above is "
        "what the one-liner and the launcher would set in an application)"
    )
    if not products["products"]:
        out.append("  library products: none (load one with --import MODULE)")
    for row in products["products"]:
        out.append(
            f"  {row['user_agent']}  packages {', '.join(row['packages'])}  set at {row['origin']}"
        )
        for name, option in row["options"].items():
            value = option["value"]
            if isinstance(value, list):
                value = ", ".join(value) or "-"
            out.append(f"    {name:<11} {value!s:<28} ({option['source']})")
        out.append("    carriers its integrations use (the environment's disabled list aside):")
        out.extend(_carrier_lines([c for c in row.get("carriers", []) if c["in_use"]], "      "))
        out.extend(f"    advice: {line}" for line in row["advice"])
    return out


def _render_result(report: Dict[str, Any]) -> List[str]:
    found = report["problems"]
    if not found:
        return ["", "result: ok (exit 0)"]
    return ["", f"result: {len(found)} problem(s) (exit 1):", *(f"  - {p}" for p in found)]


def render(report: Dict[str, Any]) -> str:
    """The text form of :func:`doctor_report`."""
    sections = (
        _render_header,
        _render_configuration,
        _render_environment,
        _render_carriers,
        _render_integrations,
        _render_runtimes,
        _render_products,
        _render_result,
    )
    return "\n".join(line for section in sections for line in section(report))


def _cmd_doctor(args: argparse.Namespace) -> int:
    refused = import_products(args.imports)
    report = doctor_report(dict(os.environ), args.user_agent, args.imports, refused)
    if args.json:
        import json

        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 1 if report["problems"] else 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-agent", metavar="UA", help="check this value instead")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable): a library product registers its value and "
        "packages there, and doctor lists it",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


COMMANDS = (
    Command(
        "doctor",
        _cmd_doctor,
        _arguments,
        help="show the resolved configuration, carriers and what would be patched",
        description="Resolved configuration and where each value came from, per-carrier "
        "validation, per integration: installed version, supported range, trigger "
        "module and what would be patched (or why not), the Node.js / Java hooks the "
        "launcher would add, and the products registered in this process (--import). "
        "A library's CI check: `ua-autotag doctor --import acme_dateng` exits 0 when every "
        "product's value fits every carrier its integrations use and no package is claimed "
        "twice (no process default needed), 1 with the reasons otherwise, 2 when the module "
        "cannot be imported; naming advice does not change the exit status. Never prints "
        "secrets.",
    ),
)
