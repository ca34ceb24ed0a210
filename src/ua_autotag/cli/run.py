"""``ua-autotag run``: start a program with every process it starts tagged.

The options are resolved once (:func:`.common.resolve_args`); the child's environment
is then written from the resolved :class:`~ua_autotag.settings.Settings`, so every
Python child resolves exactly the same value. On top: the variables clients read
themselves (``catalog.exports``: ``PGAPPNAME``, ``SPARK_CONNECT_USER_AGENT``), the
bootstrap ``sitecustomize`` first on ``PYTHONPATH``, and the Node.js / Java hooks of
:mod:`ua_autotag.runtimes`. Then the command replaces this process (``exec``), except
with ``--report``: then it runs as a child and the merged connection report
(:mod:`ua_autotag.ledger`) is printed when it ends.
"""

from __future__ import annotations

import os
import sys

from ..settings import LOG_LEVEL_VAR, OPTIONS, REPORT_DIR_VAR, REPORT_VAR, VAR, Settings
from .common import (
    CHOICES,
    COMMA_LISTS,
    SWITCHES,
    CliError,
    Command,
    add_options,
    comma_list,
    one_line,
    resolve_args,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "COMMANDS",
    "child_settings_env",
    "exports",
    "launch_environment",
    "quick_args",
    "which",
]

#: what the launcher writes for the child, derived from the settings; the value parts
#: are dropped so that the child resolves ``UA_AUTOTAG_USER_AGENT`` and nothing else
_VALUE_VARS = tuple(VAR[n] for n in ("isv", "product", "version", "version_from"))


def _set(env: Dict[str, str], var: str, value: str) -> None:
    if value:
        env[var] = value
    else:
        env.pop(var, None)


def child_settings_env(env: Dict[str, str], settings: Settings) -> None:
    """Write ``settings`` into ``env`` as the ``UA_AUTOTAG_*`` variables a child resolves."""
    for var in _VALUE_VARS:
        env.pop(var, None)
    env[VAR["user_agent"]] = str(settings.user_agent)
    env[VAR["mode"]] = settings.mode
    env[VAR["spans"]] = str(settings.spans).lower()
    env[VAR["strict"]] = str(settings.strict).lower()
    _set(env, VAR["disabled"], ",".join(sorted(settings.disabled)))
    _set(env, VAR["rest_hosts"], ",".join(settings.rest_hosts))


def exports(env: Dict[str, str], settings: Settings) -> None:
    """Export each catalog ``exports`` variable, merged per mode, while all its readers are on.

    A disabled reader would be tagged behind its back by the variable, so then the
    variable is left as it was.
    """
    from ..catalog import CATALOG, readers
    from ..merge.exports import export

    for var in dict.fromkeys(v for entry in CATALOG.values() for v in entry.exports):
        names = readers(var)
        if all(settings.enabled(n) for n in names):
            carrier = CATALOG[names[0]].carrier
            assert carrier is not None, f"{var}: its readers carry nothing"
            ours = settings.user_agent.render(carrier)  # checked by resolve: fits
            export(env, var, ours, settings.mode)


def _bootstrap_first(env: Dict[str, str]) -> Optional[str]:
    """Our sitecustomize first on PYTHONPATH; any earlier copy of it out (nested launches).

    Not where others could change it (``bootstrap.problem``): then PYTHONPATH is left
    as it was and the warning is returned.
    """
    from ..bootstrap import DIRECTORY, problem

    reason = problem()
    if reason is not None:
        return (
            f"python hook skipped: {reason}: not put on PYTHONPATH (Python children run "
            "untagged); reinstall ua-autotag where only you or root can write"
        )
    parts = env.get("PYTHONPATH", "")
    kept = [p for p in parts.split(os.pathsep) if p and os.path.abspath(p) != DIRECTORY]
    env["PYTHONPATH"] = os.pathsep.join([DIRECTORY, *kept])
    return None


def _log_level(env: Dict[str, str], level: Optional[str]) -> None:
    if level is None:
        return
    from .. import settings

    try:
        settings.apply_log_level({LOG_LEVEL_VAR: level}, label="--log-level")
    except settings.ConfigurationError as exc:
        raise CliError(str(exc)) from None
    env[LOG_LEVEL_VAR] = level


def launch_environment(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, str]:
    """The child's environment for ``run``; raises :class:`CliError` on any bad option.

    Everything is validated here, before the command starts. Hook warnings (the Python
    bootstrap, the Node.js / Java runtimes) go to stderr; they never stop the command.
    """
    from .. import runtimes, settings

    env = dict(environ)
    _log_level(env, args.log_level)
    try:
        settings.apply_log_level(env)
    except settings.ConfigurationError as exc:
        raise CliError(str(exc)) from None
    resolved = resolve_args(args, env)
    child_settings_env(env, resolved)
    exports(env, resolved)
    warnings = [_bootstrap_first(env)]
    value = str(resolved.user_agent)
    warnings += runtimes.child_environment(env, value, resolved.mode, resolved.disabled)
    for warning in filter(None, warnings):
        sys.stderr.write(f"ua-autotag run: warning: {one_line(warning)}\n")
    return env


def _command(args: argparse.Namespace) -> List[str]:
    command: List[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("no COMMAND given (ua-autotag run [options] [--] COMMAND [ARGS...])")
    return command


def which(program: str, path: str) -> Optional[str]:
    """``shutil.which(program, path=path)``, without importing ``shutil`` on POSIX (with
    ``fnmatch``, ``re``, ``enum``, ``bz2`` and ``lzma`` it is a third of the launcher's own
    start-up); the same rules: a name with a directory part is checked as it is, else
    each directory of ``path`` in turn (an empty entry is the current directory)."""
    if sys.platform == "win32":  # PATHEXT and the current directory first: shutil's own
        import shutil

        return shutil.which(program, path=path)

    def runnable(name: str) -> bool:
        return os.path.exists(name) and os.access(name, os.X_OK) and not os.path.isdir(name)

    if os.path.dirname(program):
        return program if runnable(program) else None
    seen = set()
    for directory in path.split(os.pathsep) if path else ():
        if directory not in seen:
            seen.add(directory)
            name = os.path.join(directory, program)
            if runnable(name):
                return name
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    command = _command(args)
    if not args.report and (args.report_file or args.fail_on_untagged):
        raise CliError("--report-file and --fail-on-untagged need --report (or --report=json)")
    env = launch_environment(args, dict(os.environ))
    program = command[0]
    path = which(program, env.get("PATH", os.defpath))
    if path is None:
        if os.sep in program and os.path.exists(program):
            raise CliError(f"cannot execute {program!r}: permission denied", 126)
        raise CliError(f"command not found: {program!r}", 127)
    sys.stdout.flush()
    sys.stderr.flush()
    if args.report:
        return _run_reported(args, path, command, env)
    try:
        os.execve(path, command, env)
    except OSError as exc:
        raise CliError(f"cannot execute {program!r}: {exc.strerror or exc}", 126) from None
    raise AssertionError("unreachable")  # pragma: no cover


#: exit code of ``--fail-on-untagged`` when the command itself succeeded
UNTAGGED_EXIT = 3


def _run_reported(args: argparse.Namespace, path: str, command: List[str],
                  env: Dict[str, str]) -> int:  # fmt: skip
    """``--report``: run COMMAND as a child (no exec), every Python process under it
    writing its connections into a temporary folder; print the merged report at the end."""
    import signal
    import subprocess
    import tempfile

    from .. import ledger

    with tempfile.TemporaryDirectory(prefix="ua-autotag-report-") as folder:
        env = {**env, REPORT_VAR: args.report, REPORT_DIR_VAR: folder}
        child = subprocess.Popen(command, executable=path, env=env)

        def forward(signum: int, frame: Any) -> None:
            child.send_signal(signum)

        # ^C reaches the child from the terminal itself; TERM / HUP sent to us are passed on
        previous = {
            signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
            signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
        }
        try:
            code = child.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        report = ledger.merged(folder)
    text = report.json() if args.report == "json" else report.text()
    if args.report_file:
        try:
            with open(args.report_file, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise CliError(f"--report-file {args.report_file!r}: {exc.strerror or exc}") from None
    else:
        sys.stderr.write(text)
    if code < 0:  # killed by a signal: the shell's convention
        return 128 - code
    if code == 0 and args.fail_on_untagged and report.untagged:
        return UNTAGGED_EXIT
    return code


def _arguments(parser: argparse.ArgumentParser) -> None:
    import argparse

    add_options(parser, (o.name for o in OPTIONS), "options (default: UA_AUTOTAG_* environment)")
    parser.add_argument("--log-level", metavar="LEVEL", help="level of the 'ua_autotag' logger")
    report = parser.add_argument_group("connection report")
    report.add_argument(
        "--report", nargs="?", const="text", choices=("text", "json"), metavar="FORMAT",
        help="when COMMAND ends, list every connection its Python processes opened to "
        "Databricks / PostgreSQL, tagged or not (text, or --report=json); end the "
        "options with -- after a bare --report",
    )  # fmt: skip
    report.add_argument(
        "--report-file", metavar="PATH", help="write the report to PATH instead of stderr"
    )
    report.add_argument(
        "--fail-on-untagged", action="store_true",
        help=f"with --report: exit {UNTAGGED_EXIT} when COMMAND succeeded but opened an "
        "untagged connection",
    )  # fmt: skip
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND", help="the program and its arguments"
    )


def _quick_table() -> Dict[str, Any]:
    """flag -> (dest, what it takes) for :func:`quick_args`: "value" (the next argument
    or ``=VALUE``), "list" (a comma list), a frozenset of the values allowed, or
    ("const", value) for a switch; the shapes are :mod:`.common`'s, as argparse gets them."""
    table: Dict[str, Any] = {}
    for option in OPTIONS:
        if not option.flag:
            continue
        if option.name in SWITCHES:
            takes: Any = ("const", not option.flag.startswith("--no-"))
        elif option.name in COMMA_LISTS:
            takes = "list"
        else:
            takes = frozenset(CHOICES.get(option.name, ())) or "value"
        table[option.flag] = (option.name, takes)
    table["--log-level"] = ("log_level", "value")
    table["--report-file"] = ("report_file", "value")
    table["--fail-on-untagged"] = ("fail_on_untagged", ("const", True))
    return table


_QUICK = _quick_table()
_REPORT_FORMATS = ("text", "json")


def quick_args(argv: Sequence[str]) -> Any:
    """``run``'s arguments read without argparse, for the usual command lines: each option
    spelled out (``--flag VALUE`` or ``--flag=VALUE``), then ``--`` or the command. The
    same namespace argparse would make (a test holds the two to it); None for anything
    else (help, abbreviations, an unknown option, a missing or invalid value, a value
    that starts with ``-``): argparse then reads it, and says what is wrong."""
    from types import SimpleNamespace

    found: Dict[str, Any] = {dest: None for dest, _ in _QUICK.values()}
    found.update(fail_on_untagged=False, report=None)
    i, n = 0, len(argv)
    while i < n:
        token = argv[i]
        if token == "--" or not token.startswith("-"):
            break  # the command (argparse keeps a leading "--" in it)
        flag, equals, inline = token.partition("=")
        if flag == "--report":
            if equals:
                value: Any = inline
            elif i + 1 < n and argv[i + 1] in _REPORT_FORMATS:
                i += 1
                value = argv[i]
            elif i + 1 == n or argv[i + 1].startswith("--"):
                value = "text"
            else:
                return None  # argparse would take the next word as the format
            if value not in _REPORT_FORMATS:
                return None
            found["report"] = value
            i += 1
            continue
        known = _QUICK.get(flag)
        if known is None:
            return None
        dest, takes = known
        if isinstance(takes, tuple):  # a switch
            if equals:
                return None
            found[dest] = takes[1]
            i += 1
            continue
        if equals:
            value = inline
        elif i + 1 < n and not argv[i + 1].startswith("-"):
            i += 1
            value = argv[i]
        else:
            return None
        if takes == "list":
            value = comma_list(value)
            if value is None:
                return None
        elif isinstance(takes, frozenset) and value not in takes:
            return None
        found[dest] = value
        i += 1
    return SimpleNamespace(**found, command=list(argv[i:]), subcommand="run", func=_cmd_run)


COMMANDS = (
    Command(
        "run",
        _cmd_run,
        _arguments,
        help="run a program with every process it starts tagged (Python, node, java, psql)",
        description="Run COMMAND with ua-autotag active in every Python process it starts "
        "(a sitecustomize on PYTHONPATH, chained to any existing one), PGAPPNAME / "
        "SPARK_CONNECT_USER_AGENT exported for psql & co, and hooks for Node.js "
        "(NODE_OPTIONS) and Java (JAVA_TOOL_OPTIONS). Everything is validated before "
        "COMMAND starts, and COMMAND replaces this process (exit code, signals and "
        "stdin pass through).",
        epilog="examples: ua-autotag run --user-agent AcmePartner_DatEngProduct/3.5 python "
        f"app.py | ua-autotag run -- gunicorn app:wsgi | {VAR['user_agent']}=... "
        "ua-autotag run pytest",
    ),
)
