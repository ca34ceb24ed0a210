"""``ua-autotag install-pth`` / ``uninstall-pth``: the opt-in ``.pth`` activation."""

from __future__ import annotations

import argparse
from typing import Callable, Optional, TypeVar

from .common import CliError, Command

__all__ = ["COMMANDS"]

T = TypeVar("T")


def _attempt(verb: str, action: Callable[[Optional[str]], T], target: Optional[str]) -> T:
    """``action(target)``, its OSError / ValueError turned into a one-line error (status 1)."""
    try:
        return action(target)
    except OSError as exc:
        where = getattr(exc, "filename", "") or ""
        raise CliError(f"cannot {verb} the .pth file: {exc.strerror or exc}: {where}", 1) from None
    except ValueError as exc:  # a file of that name that is not ours
        raise CliError(str(exc), 1) from None


def _cmd_install(args: argparse.Namespace) -> int:
    from .. import bootstrap

    path = _attempt("write", bootstrap.install, args.target)
    undo = "ua-autotag uninstall-pth" + (f" --target {args.target}" if args.target else "")
    print(f"installed {path}")
    print(
        "every interpreter using that site directory now runs `import ua_autotag` at start "
        f"when UA_AUTOTAG_USER_AGENT (or UA_AUTOTAG_ISV/PRODUCT) is set; remove it with `{undo}`"
    )
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from .. import bootstrap

    path = _attempt("remove", bootstrap.uninstall, args.target)
    print(f"removed {path}" if path else "nothing to remove: no ua-autotag .pth there")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", metavar="DIR", help="site directory (default: this interpreter's site-packages)"
    )


COMMANDS = (
    Command(
        "install-pth",
        _cmd_install,
        _arguments,
        help="opt-in: activate at every interpreter start when UA_AUTOTAG_* is set",
        description="Write a .pth file into site-packages (or --target) that runs `import "
        "ua_autotag` at interpreter start, only when UA_AUTOTAG_USER_AGENT (or "
        "UA_AUTOTAG_ISV/PRODUCT) is set. For images whose entrypoint cannot change. Never "
        "done implicitly.",
    ),
    Command(
        "uninstall-pth",
        _cmd_uninstall,
        _arguments,
        help="remove the .pth written by install-pth",
        description="Remove the .pth file written by install-pth.",
    ),
)
