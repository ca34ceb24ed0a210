"""What the commands share: errors, output hygiene, and the options taken from ``OPTIONS``.

The value and behaviour options of ``run`` / ``audit-sql`` / ``doctor`` are built from
:data:`ua_autotag.settings.OPTIONS` (flag and help declared there once) and resolved
with :func:`ua_autotag.settings.resolve`, which names the options, not the variables,
in its errors and in ``Settings.sources``.
"""

from __future__ import annotations

from .. import settings as config
from ..settings import OPTIONS, Option, Settings
from ..value import ConfigurationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms at import; ``run`` starts every child through here
    import argparse
    from typing import Any, Callable, Dict, Iterable, Mapping, Optional

__all__ = [
    "CHOICES",
    "COMMA_LISTS",
    "DEMO_USER_AGENT",
    "EXIT_STATUS",
    "PROG",
    "SWITCHES",
    "VALUE_OPTIONS",
    "CliError",
    "Command",
    "add_options",
    "comma_list",
    "labels",
    "one_line",
    "resolve_args",
    "scrubbed",
]

PROG = "ua-autotag"

#: demo value for ``verify`` when nothing is configured (obviously not a real one)
DEMO_USER_AGENT = "UaAutotagDemo_Verify/0.0"

VALUE_OPTIONS = config.VALUE_OPTIONS

_FORM = "<isv>_<product>[/<version>], e.g. AcmePartner_DatEngProduct/3.5"


#: the one exit-status convention of every command (``--help`` and docs/cli.md show it)
EXIT_STATUS = """\
exit status (every command):
  0        success: every check passed (run: the command's own exit status)
  1        a check failed: doctor found a problem (an invalid value, a product's value
           that does not fit a carrier it uses, a package claimed twice, nothing
           registered by --import); verify: a row missing or in error, or no row reached
  2        bad usage or configuration: an unknown or invalid option, an invalid
           UA_AUTOTAG_* value for run / verify / audit-sql, a --import that fails
  3        run --fail-on-untagged: the command succeeded but opened an untagged
           connection (the command's own non-zero status always wins)
  126/127  run: the command cannot be executed / is not found
  130      interrupted"""


class CliError(Exception):
    """A one-line error for the user, with the exit status to end on."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class Command:
    """A subcommand as its module declares it; ``ua_autotag.cli.build_parser`` adds it."""

    __slots__ = ("arguments", "description", "epilog", "help", "name", "run")

    def __init__(
        self,
        name: str,
        run: Callable[[argparse.Namespace], int],
        arguments: Callable[[argparse.ArgumentParser], None],
        help: str,
        description: str,
        epilog: Optional[str] = None,
    ) -> None:
        self.name, self.run, self.arguments = name, run, arguments
        self.help, self.description, self.epilog = help, description, epilog


def one_line(text: str) -> str:
    """``text`` on one line, secrets scrubbed."""
    from ..scrub import scrub

    return scrub(" ".join(str(text).split()))


def scrubbed(value: Any) -> Any:
    """``value`` with every string passed through ``scrub.scrub`` (no secret leaves)."""
    from ..scrub import scrub

    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrubbed(v) for v in value]
    return value


def comma_list(raw: str) -> Optional[list[str]]:
    """The names of a comma list (``a, b``); None when it names none."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return names or None


def _comma_list(raw: str) -> list[str]:
    """:func:`comma_list` as an argparse ``type``."""
    names = comma_list(raw)
    if names is None:
        import argparse

        raise argparse.ArgumentTypeError(f"needs a comma list of names: {raw!r}")
    return names


_METAVARS = {
    "user_agent": "UA",
    "version_from": "DIST",
    "disabled": "A,B",
    "rest_hosts": "H1,H2",
}

#: how an option is written on the command line where it is not one plain string: one
#: of these values, or a comma list (argparse and ``run.quick_args`` both read these)
CHOICES: Dict[str, Any] = {"mode": config.MODES}
COMMA_LISTS = ("disabled", "rest_hosts")
#: the switches (present or not): the flag's value is whether it does not start "--no-"
SWITCHES = ("spans", "strict")
_SHAPES: Dict[str, Dict[str, Any]] = {
    **{name: {"choices": values} for name, values in CHOICES.items()},
    **{name: {"type": _comma_list} for name in COMMA_LISTS},
}


def _argument(option: Option) -> Dict[str, Any]:
    help_text = option.help + (f" [env {option.env}]" if option.env else "")
    assert option.flag is not None
    if option.name in SWITCHES:
        on = not option.flag.startswith("--no-")
        return {
            "dest": option.name,
            "action": "store_const",
            "const": on,
            "default": None,
            "help": f"{option.name}={str(on).lower()} ({help_text})",
        }
    kwargs = {"dest": option.name, "help": help_text, **_SHAPES.get(option.name, {})}
    if "choices" not in kwargs:
        kwargs["metavar"] = _METAVARS.get(option.name, option.name.upper())
    return kwargs


def add_options(parser: argparse.ArgumentParser, names: Iterable[str], title: str) -> None:
    """Add the options ``names`` of :data:`OPTIONS` (their ``flag`` and ``help``) to ``parser``."""
    group = parser.add_argument_group(title)
    wanted = set(names)
    for option in OPTIONS:
        if option.name in wanted and option.flag:
            group.add_argument(option.flag, **_argument(option))


def labels() -> Dict[str, str]:
    """Option name -> its flag: how ``resolve`` names them in errors and sources."""
    return {o.name: o.flag for o in OPTIONS if o.flag}


def _given(args: argparse.Namespace) -> Dict[str, Any]:
    found = {o.name: getattr(args, o.name, None) for o in OPTIONS if o.flag}
    flags = labels()
    for name in VALUE_OPTIONS:
        if found.get(name) == "":
            raise CliError(f"{flags[name]}: must not be empty: '' (the User-Agent is {_FORM})")
    if found.get("disabled") is None:
        found["disabled"] = ()
    if found.get("version") is not None and not any(
        found.get(n) is not None for n in ("user_agent", "isv", "product")
    ):
        raise CliError(
            f"{flags['version']} needs {flags['isv']}/{flags['product']} (or {flags['user_agent']})"
        )
    return {k: v for k, v in found.items() if v is not None}


def resolve_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """``settings.resolve`` of the parsed options over ``environ`` (options win).

    Raises :class:`CliError` (status 2) naming the option or variable at fault.
    """
    try:
        return config.resolve(**_given(args), environ=environ, labels=labels())
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
