"""The ``ua-autotag`` console script: run, verify, doctor, record, audit-sql, install-pth, ...

One module per command (``run``, ``verify``, ``doctor``, ``record``, ``audit_sql``,
``pth``), each declaring its ``COMMANDS`` (name, function, arguments, help); what they
share is in :mod:`.common`. Importing this package is cheap (argparse, the settings and
the value module): every command imports what it needs when it runs. Errors go to stderr
as one line (``ua-autotag <command>: error: ...``), never a traceback; the exit status
follows :data:`.common.EXIT_STATUS` (also in every ``--help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..value import ConfigurationError
from .common import EXIT_STATUS, PROG, CliError, one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Optional, Sequence

__all__ = ["CliError", "build_parser", "main"]

#: the command modules, imported when the parser is built: ``run`` alone when it is the
#: command (it sits in front of every start of the user's program)
_MODULES = ("run", "verify", "doctor", "record", "audit_sql", "pth")


_EPILOG = f"""\
The value is <isv>_<product>[/<version>], e.g. AcmePartner_DatEngProduct/3.5 (isv:
letters, digits, . + -; product also _; at most 63 bytes while a PostgreSQL client
is tagged). A library product registers it in its own __init__.py:
  ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", packages=[__name__])
and checks that in its CI with `ua-autotag doctor --import <its package>`.
An application sets the process default: UA_AUTOTAG_USER_AGENT, or
  ua-autotag run --user-agent AcmePartner_DatEngProduct/3.5 -- python app.py
Start with `ua-autotag verify`; each command's options: `ua-autotag COMMAND --help`.

{EXIT_STATUS}"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions reflowed as usual; epilogs (examples, exit status) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(modules: Sequence[str] = _MODULES) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Tag every connection a Databricks partner product opens with its "
        "User-Agent (<isv>_<product>[/<version>]).",
        formatter_class=_Formatter,
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for name in modules:
        for command in importlib.import_module(f"{__name__}.{name}").COMMANDS:
            one = sub.add_parser(
                command.name,
                help=command.help,
                description=command.description,
                epilog="\n\n".join(filter(None, [command.epilog, EXIT_STATUS])),
                formatter_class=_Formatter,
            )
            command.arguments(one)
            one.set_defaults(func=command.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ua-autotag`` script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(("run",) if argv[:1] == ["run"] else _MODULES)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.error(
            "a command is required: run, verify, doctor, record, audit-sql, install-pth, "
            "uninstall-pth"
        )
    try:
        status: int = args.func(args)
        return status
    except (CliError, ConfigurationError) as exc:
        _err(f"{PROG} {args.subcommand}", str(exc))
        return exc.status if isinstance(exc, CliError) else 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # one line, never a traceback
        _err(f"{PROG} {args.subcommand}", f"unexpected {type(exc).__name__}: {exc}")
        return 1


def _err(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {one_line(message)}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
