"""The ``ua-autotag`` console script: run, verify, doctor, audit-sql, install-pth.

Importing this module is cheap (argparse and the core value module only): every
subcommand imports what it needs when it runs. Errors go to stderr as one line
(``ua-autotag <command>: error: ...``), never a traceback, with a non-zero exit:
2 for bad usage or configuration, 126/127 for a command that cannot be started,
1 for everything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, NoReturn, Optional, Sequence

from . import __version__
from .value import ConfigurationError

__all__ = ["main"]

PROG = "ua-autotag"

#: demo value for ``verify`` / ``doctor`` when nothing is configured (obviously not a real one)
DEMO_USER_AGENT = "UaAutotagDemo_Verify/0.0"

_UA_VARS = (
    "UA_AUTOTAG_USER_AGENT",
    "UA_AUTOTAG_ISV",
    "UA_AUTOTAG_PRODUCT",
    "UA_AUTOTAG_VERSION",
    "UA_AUTOTAG_VERSION_FROM",
)

#: integrations whose clients read PGAPPNAME / SPARK_CONNECT_USER_AGENT themselves: when
#: one is disabled, exporting the variable would tag it anyway, so it is not exported
_PGAPPNAME_READERS = ("psycopg", "psycopg2")
_SPARK_UA_READERS = ("spark_connect", "databricks_connect")


class CliError(Exception):
    """A one-line error for the user, with the exit status to end on."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- helpers


def _err(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {_one_line(message)}\n")


def _one_line(text: str) -> str:
    from .telemetry import scrub

    return scrub(" ".join(str(text).split()))


def _config_args(parser: argparse.ArgumentParser, *, versions: bool = True) -> None:
    """--user-agent / --isv --product --version: the value, as for ``instrument()``."""
    group = parser.add_argument_group("the User-Agent (default: UA_AUTOTAG_* environment)")
    group.add_argument("--user-agent", metavar="UA", help="e.g. AcmePartner_DatEngProduct/3.5")
    if versions:
        group.add_argument("--isv", help="isv name (with --product, instead of --user-agent)")
        group.add_argument("--product", help="product name")
        group.add_argument(
            "--version", dest="product_version", metavar="VERSION", help="product version"
        )
        group.add_argument(
            "--version-from",
            metavar="DIST",
            help="read the version from this installed distribution",
        )


def _apply_config_args(args: argparse.Namespace, env: Dict[str, str]) -> None:
    """Write the value options into ``env`` as UA_AUTOTAG_* variables (options win)."""
    ua = getattr(args, "user_agent", None)
    isv = getattr(args, "isv", None)
    product = getattr(args, "product", None)
    version = getattr(args, "product_version", None)
    version_from = getattr(args, "version_from", None)
    if ua is not None and (isv is not None or product is not None):
        raise CliError("give either --user-agent or --isv/--product, not both")
    if ua is not None and version is not None:
        raise CliError("--version goes with --isv/--product; put it in --user-agent instead")
    if version is not None and version_from is not None:
        raise CliError("give either --version or --version-from, not both")
    if ua is not None:
        for var in _UA_VARS:
            env.pop(var, None)
        env["UA_AUTOTAG_USER_AGENT"] = ua
    elif isv is not None or product is not None:
        if not (isv and product):
            raise CliError("--isv and --product go together: both are required")
        for var in _UA_VARS:
            env.pop(var, None)
        env["UA_AUTOTAG_ISV"] = isv
        env["UA_AUTOTAG_PRODUCT"] = product
        if version is not None:
            env["UA_AUTOTAG_VERSION"] = version
    elif version is not None:
        raise CliError("--version needs --isv and --product")
    if version_from is not None:
        env.pop("UA_AUTOTAG_VERSION", None)
        env["UA_AUTOTAG_VERSION_FROM"] = version_from


def _has_user_agent(env: Dict[str, str]) -> bool:
    return bool(
        env.get("UA_AUTOTAG_USER_AGENT")
        or env.get("UA_AUTOTAG_ISV")
        or env.get("UA_AUTOTAG_PRODUCT")
    )


def _resolve(env: Dict[str, str]) -> Any:
    """``config.resolve`` over ``env`` (raises ConfigurationError naming the rule)."""
    from . import settings

    settings.apply_log_level(env)
    return settings.resolve(environ=env)


def _merge_pgappname(existing: Optional[str], ours: str, mode: str) -> str:
    """Merge into PGAPPNAME: the PostgreSQL integration's helper if there is one."""
    from .merge.libpq import pgappname

    return pgappname(existing, ours, mode)


# --------------------------------------------------------------------------- run


def _name_options(message: str, args: argparse.Namespace) -> str:
    """Name the option, not the variable it became, in an error about its value."""
    if getattr(args, "user_agent", None) is not None:
        message = message.replace("UA_AUTOTAG_USER_AGENT:", "--user-agent:")
    elif getattr(args, "isv", None) is not None:
        message = message.replace("UA_AUTOTAG_ISV/PRODUCT/VERSION:", "--isv/--product/--version:")
    if getattr(args, "version_from", None) is not None:
        message = message.replace("UA_AUTOTAG_VERSION_FROM", "--version-from")
    if getattr(args, "log_level", None) is not None:
        message = message.replace("UA_AUTOTAG_LOG_LEVEL", "--log-level")
    return message


def launch_environment(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, str]:
    """The child's environment for ``run``; raises on any bad option or value.

    Everything is validated here, before the command starts: the child resolves the
    same variables again, and must find nothing to complain about.
    """
    from .bootstrap import DIRECTORY
    from .value import InvalidUserAgent

    env = dict(environ)
    _apply_config_args(args, env)
    if args.mode is not None:
        env["UA_AUTOTAG_MODE"] = args.mode
    if args.disable is not None:
        names = [n.strip() for n in args.disable.split(",") if n.strip()]
        if not names:
            raise CliError("--disable needs a comma list of integrations (or 'all')")
        previous = env.get("UA_AUTOTAG_DISABLED_INTEGRATIONS", "")
        merged = [n for n in previous.split(",") if n.strip()] + names
        env["UA_AUTOTAG_DISABLED_INTEGRATIONS"] = ",".join(dict.fromkeys(merged))
    if args.no_spans:
        env["UA_AUTOTAG_SPANS"] = "false"
    if args.strict:
        env["UA_AUTOTAG_STRICT"] = "true"
    if args.rest_hosts is not None:
        env["UA_AUTOTAG_REST_HOSTS"] = args.rest_hosts
    if args.log_level is not None:
        env["UA_AUTOTAG_LOG_LEVEL"] = args.log_level
    if not _has_user_agent(env):
        raise CliError(
            "no User-Agent: give --user-agent (or --isv/--product), or set "
            "UA_AUTOTAG_USER_AGENT (or UA_AUTOTAG_ISV and UA_AUTOTAG_PRODUCT)"
        )
    try:
        settings = _resolve(env)
    except ConfigurationError as exc:
        raise CliError(_name_options(str(exc), args)) from None
    ua = settings.user_agent

    if all(settings.enabled(n) for n in _PGAPPNAME_READERS):
        try:
            ours = ua.render("application_name")
        except InvalidUserAgent:
            pass  # only possible with every PostgreSQL integration disabled: nothing to tag
        else:
            env["PGAPPNAME"] = _merge_pgappname(env.get("PGAPPNAME"), ours, settings.mode)
    if all(settings.enabled(n) for n in _SPARK_UA_READERS):
        from .merge.tokens import merge_tokens

        env["SPARK_CONNECT_USER_AGENT"] = merge_tokens(
            env.get("SPARK_CONNECT_USER_AGENT"), ua.render("spark_connect"), settings.mode
        )

    # our sitecustomize first; any earlier copy of it out (nested launches)
    parts = env.get("PYTHONPATH", "")
    kept = (
        [p for p in parts.split(os.pathsep) if p and os.path.abspath(p) != DIRECTORY]
        if parts
        else []
    )
    env["PYTHONPATH"] = os.pathsep.join([DIRECTORY, *kept])
    return env


def _cmd_run(args: argparse.Namespace) -> int:
    import shutil

    command: List[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("no COMMAND given (ua-autotag run [options] [--] COMMAND [ARGS...])")
    env = launch_environment(args, dict(os.environ))
    program = command[0]
    path = shutil.which(program, path=env.get("PATH", os.defpath))
    if path is None:
        if os.sep in program and os.path.exists(program):
            raise CliError(f"cannot execute {program!r}: permission denied", 126)
        raise CliError(f"command not found: {program!r}", 127)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, command, env)
    except OSError as exc:
        raise CliError(f"cannot execute {program!r}: {exc.strerror or exc}", 126) from None
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- doctor


def doctor_report(environ: Dict[str, str], user_agent: Optional[str] = None) -> Dict[str, Any]:
    """Everything ``doctor`` shows, as plain data (the --json output)."""
    from . import _pth
    from . import settings as config
    from .bootstrap import DIRECTORY
    from .catalog import CATALOG, module_for
    from .engine import patcher as registry
    from .merge import CARRIERS
    from .telemetry import scrub

    env = dict(environ)
    if user_agent is not None:
        for var in _UA_VARS:
            env.pop(var, None)
        env["UA_AUTOTAG_USER_AGENT"] = user_agent
    shown_env = {
        k: scrub(v)
        for k, v in sorted(env.items())
        if k.startswith("UA_AUTOTAG_") or k in ("PGAPPNAME", "SPARK_CONNECT_USER_AGENT")
    }
    report: Dict[str, Any] = {
        "ua_autotag": {
            "version": __version__,
            "python": sys.executable,
            "launcher_bootstrap": DIRECTORY,
            "pth_activation": _pth.installed(),
        },
        "environment": shown_env,
    }
    settings = None
    if not _has_user_agent(env) and user_agent is None:
        report["configuration"] = {
            "status": "not configured",
            "message": "no User-Agent in the environment: `import ua_autotag` does nothing; "
            "set UA_AUTOTAG_USER_AGENT or use `ua-autotag run --user-agent ...`",
        }
    else:
        try:
            settings = _resolve(env)
        except ConfigurationError as exc:
            report["configuration"] = {"status": "invalid", "error": _one_line(str(exc))}
        else:
            report["configuration"] = {
                "status": "ok",
                "user_agent": str(settings.user_agent),
                "mode": settings.mode,
                "spans": settings.spans,
                "strict": settings.strict,
                "disabled": sorted(settings.disabled),
                "rest_hosts": list(settings.rest_hosts),
                "sources": dict(sorted(settings.sources.items())),
            }

    carriers = []
    in_use = config.carriers_in_use(settings) if settings is not None else set()
    for name, carrier in CARRIERS.items():
        row: Dict[str, Any] = {
            "carrier": name,
            "description": carrier.description,
            "limit_bytes": carrier.max_bytes,
            "in_use": name in in_use if settings is not None else None,
        }
        if settings is not None:
            text = str(settings.user_agent)
            row["bytes"] = len(text.encode())
            try:
                row["value"] = settings.user_agent.render(name)
                row["status"] = "ok"
            except ConfigurationError as exc:
                row["status"] = "too long" if carrier.max_bytes else "invalid"
                row["error"] = _one_line(str(exc))
        carriers.append(row)
    report["carriers"] = carriers

    integrations = []
    for name, entry in CATALOG.items():
        row = {
            "integration": name,
            "trigger": entry.trigger,
            "carrier": entry.carrier,
            "module": module_for(name),
        }
        try:
            spec = registry.load_spec(name)
        except ImportError:
            row.update(
                status="unavailable", reason=f"integration module {module_for(name)} is not there"
            )
            integrations.append(row)
            continue
        except Exception as exc:
            row.update(status="unavailable", reason=_one_line(f"{type(exc).__name__}: {exc}"))
            integrations.append(row)
            continue
        version = registry.installed_version(spec.distributions)
        row.update(
            distributions=list(spec.distributions),
            installed=version,
            supported=spec.supported,
            patches=[
                f"{p.module}.{p.path}" + (" (optional)" if p.optional else "") for p in spec.patches
            ],
            setup=getattr(spec.setup, "__qualname__", None) if spec.setup else None,
        )
        out_of_range = registry.version_supported(spec, version) if version else None
        if version is None:
            row.update(
                status="not installed", reason=f"{' / '.join(spec.distributions)} not installed"
            )
        elif out_of_range is not None:
            row.update(status="unsupported", reason=out_of_range)
        elif settings is not None and not settings.enabled(name):
            row.update(status="disabled", reason=f"by {settings.sources.get('disabled')}")
        elif settings is None:
            row.update(status="would patch (once configured)")
        else:
            row.update(status="would patch", reason=f"when {entry.trigger} is imported")
        integrations.append(row)
    report["integrations"] = integrations
    clean: Dict[str, Any] = _scrubbed(report)
    return clean


def _scrubbed(value: Any) -> Any:
    """``value`` with every string passed through ``telemetry.scrub`` (no secret leaves)."""
    from .telemetry import scrub

    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v) for v in value]
    return value


def _cmd_doctor(args: argparse.Namespace) -> int:
    report = doctor_report(dict(os.environ), args.user_agent)
    ok = report["configuration"]["status"] == "ok"
    if args.json:
        import json

        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    out: List[str] = []
    info = report["ua_autotag"]
    out.append(f"ua-autotag {info['version']}  (python: {info['python']})")
    out.append(f"launcher bootstrap: {info['launcher_bootstrap']}")
    out.append(f".pth activation: {', '.join(info['pth_activation']) or 'not installed'}")
    out.append("")
    conf = report["configuration"]
    out.append(f"configuration: {conf['status']}")
    if conf["status"] == "ok":
        for key in ("user_agent", "mode", "spans", "strict", "disabled", "rest_hosts"):
            value = conf[key]
            if isinstance(value, list):
                value = ", ".join(value) or "-"
            out.append(f"  {key:<11} {value!s:<40} ({conf['sources'].get(key, 'default')})")
        if "version" in conf["sources"]:
            out.append(f"  {'version':<11} {'':<40} ({conf['sources']['version']})")
    else:
        out.append(f"  {conf.get('error') or conf.get('message')}")
    if report["environment"]:
        out.append("environment:")
        out.extend(f"  {k}={v}" for k, v in report["environment"].items())
    out.append("")
    out.append("carriers:")
    for row in report["carriers"]:
        limit = f"<= {row['limit_bytes']} bytes" if row["limit_bytes"] else "no byte limit"
        state = row.get("status", "-")
        if "bytes" in row:
            state += f" ({row['bytes']} bytes, {limit})"
        if row.get("error"):
            state += f": {row['error']}"
        used = "" if row["in_use"] in (None, True) else "  [not used: integrations disabled]"
        out.append(f"  {row['carrier']:<17} {state}{used}")
    out.append("")
    out.append("integrations:")
    for row in report["integrations"]:
        head = f"  {row['integration']:<19}"
        if row["status"] == "unavailable":
            out.append(f"{head}unavailable: {row['reason']}")
            continue
        installed = row["installed"] or "-"
        out.append(f"{head}{row['status']}{': ' + row['reason'] if row.get('reason') else ''}")
        out.append(
            f"  {'':<19}installed {installed}, supported {row['supported']}, "
            f"trigger {row['trigger']}, carrier {row['carrier']}"
        )
        for patch in row["patches"]:
            out.append(f"  {'':<19}  wraps {patch}")
        if row.get("setup"):
            out.append(f"  {'':<19}  setup {row['setup']}")
    print("\n".join(out))
    return 0 if ok else 1


# --------------------------------------------------------------------------- audit-sql


def sql_string(text: str) -> str:
    """``text`` as a Databricks SQL string literal (backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


LIKE_ESCAPE = "!"


def like_pattern(text: str, escape: str = LIKE_ESCAPE) -> str:
    """A LIKE pattern matching ``text`` anywhere: its ``%`` ``_`` and escape char escaped.

    ``!`` rather than the default backslash as the escape character: a backslash
    is also the string-literal escape (so it would need doubling, and reads
    differently with ``spark.sql.parser.escapedStringLiterals``); ``!`` means the
    same everywhere and cannot occur in a valid User-Agent.
    """
    escaped = "".join(escape + ch if ch in ("%", "_", escape) else ch for ch in text)
    return f"%{escaped}%"


def audit_sql(value: str, days: int) -> str:
    """The partner guide's ``system.access.audit`` query for ``value``, and a summary."""
    exact = sql_string(like_pattern(value.lower()))
    name = value.split("/", 1)[0]
    any_version = sql_string(like_pattern(name.lower()))
    esc = sql_string(LIKE_ESCAPE)
    window = f"event_time > current_timestamp() - INTERVAL {days} days"
    return f"""\
-- Requests Databricks recorded with User-Agent {value} in the last {days} day(s).
-- Needs read access to system tables (system.access.audit); run it on a SQL warehouse.
SELECT *
FROM system.access.audit
WHERE {window}
  AND lower(user_agent) LIKE {exact} ESCAPE {esc};

-- Every version of {name}, per day, service and User-Agent:
SELECT date(event_time) AS day, service_name, action_name, user_agent, count(*) AS events
FROM system.access.audit
WHERE {window}
  AND lower(user_agent) LIKE {any_version} ESCAPE {esc}
GROUP BY 1, 2, 3, 4
ORDER BY day DESC, events DESC;

-- Query History (SQL warehouses, serverless, SQL Execution API): open
-- "Query History" in the workspace sidebar, filter on the time range, and look at
-- the "Source" column: queries sent with this tag show {value} there.
-- '_' is a LIKE wildcard, hence the {LIKE_ESCAPE}_ escape above (ESCAPE {esc}).
"""


def _cmd_audit_sql(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    _apply_config_args(args, env)
    if not _has_user_agent(env):
        raise CliError(
            "no User-Agent: give --user-agent or set UA_AUTOTAG_USER_AGENT "
            "(or UA_AUTOTAG_ISV and UA_AUTOTAG_PRODUCT)"
        )
    from . import settings

    try:
        ua = settings.resolve(environ=env).user_agent
    except ConfigurationError as exc:
        raise CliError(_name_options(str(exc), args)) from None
    sys.stdout.write(audit_sql(str(ua), args.days))
    return 0


def _positive_days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--days must be a whole number: {raw!r}") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"--days must be between 1 and 3650: {raw!r}")
    return days


# --------------------------------------------------------------------------- .pth


def _cmd_install_pth(args: argparse.Namespace) -> int:
    from . import _pth

    try:
        path = _pth.install(args.target)
    except OSError as exc:
        raise CliError(
            f"cannot write the .pth file: {exc.strerror or exc}: {getattr(exc, 'filename', '')}", 1
        ) from None
    print(f"installed {path}")
    print(
        "every interpreter using that site directory now runs `import ua_autotag` at start "
        "when UA_AUTOTAG_USER_AGENT (or UA_AUTOTAG_ISV/PRODUCT) is set; remove it with "
        "`ua-autotag uninstall-pth" + (f" --target {args.target}`" if args.target else "`")
    )
    return 0


def _cmd_uninstall_pth(args: argparse.Namespace) -> int:
    from . import _pth

    try:
        path = _pth.uninstall(args.target)
    except OSError as exc:
        raise CliError(
            f"cannot remove the .pth file: {exc.strerror or exc}: {getattr(exc, 'filename', '')}", 1
        ) from None
    except ValueError as exc:
        raise CliError(str(exc), 1) from None
    print(f"removed {path}" if path else "nothing to remove: no ua-autotag .pth there")
    return 0


# --------------------------------------------------------------------------- verify


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import runner

    return runner.run(
        user_agent=args.user_agent,
        as_json=args.json,
        pg_dsn=args.pg_dsn,
        only=args.only,
        timeout=args.timeout,
    )


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Tag every connection a Databricks partner product opens with its "
        "User-Agent (<isv>_<product>[/<version>]).",
        epilog="Start with `ua-autotag verify`; then `ua-autotag run --user-agent "
        "AcmePartner_DatEngProduct/3.5 python app.py`.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a program with every Python process it starts instrumented",
        description="Run COMMAND with ua-autotag active in every Python process it starts "
        "(a sitecustomize on PYTHONPATH, chained to any existing one), and "
        "PGAPPNAME / SPARK_CONNECT_USER_AGENT exported for psql & co. Options "
        "become UA_AUTOTAG_* variables; everything is validated before COMMAND "
        "starts, and COMMAND replaces this process (exit code, signals and "
        "stdin pass through).",
        epilog="examples: ua-autotag run --user-agent AcmePartner_DatEngProduct/3.5 python "
        "app.py | ua-autotag run -- gunicorn app:wsgi | UA_AUTOTAG_USER_AGENT=... "
        "ua-autotag run pytest",
    )
    _config_args(run)
    run.add_argument(
        "--mode",
        choices=("append", "replace", "keep"),
        help="when the caller already set a value (default: append)",
    )
    run.add_argument("--disable", metavar="A,B", help="integrations to leave alone, or 'all'")
    run.add_argument("--no-spans", action="store_true", help="no OpenTelemetry spans/metrics")
    run.add_argument(
        "--strict",
        action="store_true",
        help="a bad value in a child process raises instead of warning",
    )
    run.add_argument(
        "--rest-hosts",
        metavar="H1,H2",
        help="extra hosts whose REST calls (requests/httpx/urllib3) are tagged",
    )
    run.add_argument("--log-level", metavar="LEVEL", help="level of the 'ua_autotag' logger")
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND", help="the program and its arguments"
    )
    run.set_defaults(func=_cmd_run)

    verify = sub.add_parser(
        "verify",
        help="prove the tag reaches each installed client's server (local peers)",
        description="For every supported client that is installed: instrument, open a real "
        "connection against a local peer (HTTP header recorder, Spark Connect "
        "gRPC server, the PostgreSQL at --pg-dsn, unixODBC with a trace), and "
        "show what the peer received. Exit 0 only when every installed "
        "integration is ok.",
    )
    verify.add_argument(
        "--user-agent",
        metavar="UA",
        help=f"value to verify (default: the environment, else the demo value {DEMO_USER_AGENT})",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument(
        "--pg-dsn",
        metavar="DSN",
        help="PostgreSQL to connect to (default: libpq environment, else "
        "host=127.0.0.1 port=5432 user=postgres dbname=test, then the "
        "local socket)",
    )
    verify.add_argument("--only", metavar="A,B", help="probe only these integrations")
    verify.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="per-probe timeout (default 120)",
    )
    verify.set_defaults(func=_cmd_verify)

    doctor = sub.add_parser(
        "doctor",
        help="show the resolved configuration, carriers and what would be patched",
        description="Resolved configuration and where each value came from, per-carrier "
        "validation, and per integration: installed version, supported range, "
        "trigger module and what would be patched (or why not). Exit 0 when "
        "the configuration is valid. Never prints secrets.",
    )
    doctor.add_argument("--user-agent", metavar="UA", help="check this value instead")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=_cmd_doctor)

    audit = sub.add_parser(
        "audit-sql",
        help="print the system.access.audit query that finds your tag in Databricks",
        description="Print the partner guide's system.access.audit query for the configured "
        "User-Agent (quotes and LIKE wildcards escaped), and how to check Query "
        "History.",
    )
    _config_args(audit)
    audit.add_argument(
        "--days", type=_positive_days, default=2, metavar="N", help="look back N days (default 2)"
    )
    audit.set_defaults(func=_cmd_audit_sql)

    install = sub.add_parser(
        "install-pth",
        help="opt-in: activate at every interpreter start when UA_AUTOTAG_* is set",
        description="Write a .pth file into site-packages (or --target) that runs `import "
        "ua_autotag` at interpreter start, only when UA_AUTOTAG_USER_AGENT (or "
        "UA_AUTOTAG_ISV/PRODUCT) is set. For images whose entrypoint cannot "
        "change. Never done implicitly.",
    )
    install.add_argument(
        "--target", metavar="DIR", help="site directory (default: this interpreter's site-packages)"
    )
    install.set_defaults(func=_cmd_install_pth)

    uninstall = sub.add_parser(
        "uninstall-pth",
        help="remove the .pth written by install-pth",
        description="Remove the .pth file written by install-pth.",
    )
    uninstall.add_argument(
        "--target", metavar="DIR", help="site directory (default: this interpreter's site-packages)"
    )
    uninstall.set_defaults(func=_cmd_uninstall_pth)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ua-autotag`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.error(
            "a command is required: run, verify, doctor, audit-sql, install-pth, uninstall-pth"
        )
    prog = f"{PROG} {args.subcommand}"
    try:
        status: int = args.func(args)
        return status
    except CliError as exc:
        _err(prog, str(exc))
        return exc.status
    except ConfigurationError as exc:
        _err(prog, str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # one line, never a traceback
        _err(prog, f"unexpected {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
