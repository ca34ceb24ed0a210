"""The ``ua-autotag`` argparse parser: every command's arguments and ``--help``.

Imported only when a command line needs it (every command but the usual forms of
``run``, see :func:`ua_autotag.cli.run.quick_args`).
"""

from __future__ import annotations

import argparse
import importlib

from .. import __version__
from .common import EXIT_STATUS, PROG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Sequence

__all__ = ["build"]


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


def build(modules: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of the commands the modules ``modules`` (under ``ua_autotag.cli``) declare."""
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
        for command in importlib.import_module(f"ua_autotag.cli.{name}").COMMANDS:
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
