"""The ``ua-autotag`` console script: run, verify, doctor, record, audit-sql, install-pth, ...

One module per command (``run``, ``verify``, ``doctor``, ``record``, ``audit_sql``,
``pth``), each declaring its ``COMMANDS`` (name, function, arguments, help); what they
share is in :mod:`.common`, the argparse parser in :mod:`.parser`. ``run`` sits in front
of every start of the user's program: its usual command lines are read without argparse
(:func:`.run.quick_args`; argparse, with ``re`` and ``enum``, is most of the launcher's
own start-up), anything else goes to the parser. Errors go to stderr as one line
(``ua-autotag <command>: error: ...``), never a traceback; the exit status follows
:data:`.common.EXIT_STATUS` (also in every ``--help``).
"""

from __future__ import annotations

import sys

from ..value import ConfigurationError
from .common import PROG, CliError, one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Optional, Sequence

__all__ = ["CliError", "build_parser", "main"]

#: the command modules, imported when the parser is built: ``run`` alone when it is the
#: command (it sits in front of every start of the user's program)
_MODULES = ("run", "verify", "doctor", "record", "audit_sql", "pth")


def build_parser(modules: Sequence[str] = _MODULES) -> argparse.ArgumentParser:
    """The argparse parser of ``modules``' commands (:func:`.parser.build`)."""
    from .parser import build

    return build(modules)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ua-autotag`` script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args: Any = None
    if argv[:1] == ["run"]:
        from .run import quick_args

        args = quick_args(argv[1:])  # None: not one of the usual forms
    if args is None:
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
