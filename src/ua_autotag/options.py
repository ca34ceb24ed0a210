"""Every option of ``instrument()``, declared once, and the environment variables derived
from it: what ``import ua_autotag`` reads to decide whether to instrument at all.

Standard library only and small: it is imported by every ``import ua_autotag``, configured
or not (:mod:`ua_autotag.settings` turns the options into :class:`Settings`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Mapping, Optional, Tuple

__all__ = [
    "ENV",
    "FALSE",
    "MODES",
    "NODE_MODE_VAR",
    "NODE_USER_AGENT_VAR",
    "OPTIONS",
    "TRUE",
    "VALUE_OPTIONS",
    "VALUE_VARS",
    "VAR",
    "Option",
    "has_user_agent",
    "is_true",
]

MODES = ("append", "replace", "keep")


class Option:
    """One option of ``instrument()``: its keyword, environment variable and launcher flag."""

    __slots__ = ("env", "flag", "help", "name")

    def __init__(
        self, name: str, env: Optional[str], help: str, flag: Optional[str] = None
    ) -> None:
        self.name = name
        self.env = env
        self.help = help
        self.flag = flag  # the launcher's option, when it has one

    def __repr__(self) -> str:
        return f"Option({self.name!r})"


#: Every option of ``instrument()``, in its signature's order.
OPTIONS: Tuple[Option, ...] = (
    Option(
        "user_agent",
        "UA_AUTOTAG_USER_AGENT",
        "the full value, e.g. AcmePartner_DatEngProduct/3.5",
        "--user-agent",
    ),
    Option("isv", "UA_AUTOTAG_ISV", "isv name (with product, instead of user_agent)", "--isv"),
    Option("product", "UA_AUTOTAG_PRODUCT", "product name", "--product"),
    Option("version", "UA_AUTOTAG_VERSION", "product version (optional)", "--version"),
    Option(
        "version_from",
        "UA_AUTOTAG_VERSION_FROM",
        "read the version from this installed distribution",
        "--version-from",
    ),
    Option(
        "packages",
        None,
        "module names whose connections this value tags (a library product); "
        "none: the process default",
    ),
    Option("integrations", None, "only these integrations (default: all)"),
    Option(
        "disabled",
        "UA_AUTOTAG_DISABLED_INTEGRATIONS",
        "comma list of integrations (or launcher runtimes node, java) to leave alone, or 'all'",
        "--disable",
    ),
    Option("mode", "UA_AUTOTAG_MODE", "append (default) | replace | keep", "--mode"),
    Option(
        "spans",
        "UA_AUTOTAG_SPANS",
        "true (default) | false: OpenTelemetry spans and metrics",
        "--no-spans",
    ),
    Option(
        "strict",
        "UA_AUTOTAG_STRICT",
        "true | false (default): raise instead of warn on bad configuration",
        "--strict",
    ),
    Option(
        "rest_hosts",
        "UA_AUTOTAG_REST_HOSTS",
        "comma list of extra hosts whose REST calls are tagged",
        "--rest-hosts",
    ),
)

#: The value options (the rest are behaviour).
VALUE_OPTIONS = ("user_agent", "isv", "product", "version", "version_from")

#: option name -> its environment variable (every name below is derived from here)
VAR: Dict[str, str] = {o.name: o.env for o in OPTIONS if o.env is not None}

#: Variables that are not options of ``instrument()``, with what they mean.
LOG_LEVEL_VAR = "UA_AUTOTAG_LOG_LEVEL"
ODBC_DRIVERS_VAR = "UA_AUTOTAG_ODBC_DRIVERS"
ODBC_DSNS_VAR = "UA_AUTOTAG_ODBC_DSNS"
CACHE_DIR_VAR = "UA_AUTOTAG_CACHE_DIR"
REPORT_VAR = "UA_AUTOTAG_REPORT"
REPORT_DIR_VAR = "UA_AUTOTAG_REPORT_DIR"
#: The launcher's word to its Node.js preload (read by preload.cjs, not by Python): the
#: value and mode for Node.js children, set only where they differ from the Python ones.
NODE_USER_AGENT_VAR = "UA_AUTOTAG_NODE_USER_AGENT"
NODE_MODE_VAR = "UA_AUTOTAG_NODE_MODE"

#: Every environment variable ua-autotag reads, with what it means (README table).
ENV: Dict[str, str] = {
    **{o.env: o.help for o in OPTIONS if o.env},
    LOG_LEVEL_VAR: "level of the 'ua_autotag' logger (DEBUG, INFO, WARNING...)",
    ODBC_DRIVERS_VAR: "comma list of extra ODBC driver-name fragments meaning Databricks",
    ODBC_DSNS_VAR: "comma list of ODBC DSN names meaning Databricks",
    CACHE_DIR_VAR: "where the launcher keeps what it builds for Java children",
    REPORT_VAR: "text | json: print the connection report at exit (set by run --report)",
    REPORT_DIR_VAR: "where a child writes its report for the launcher to merge",
    NODE_USER_AGENT_VAR: "the value for Node.js children (the launcher sets it for its preload)",
    NODE_MODE_VAR: "the mode for Node.js children (the launcher sets it for its preload)",
}

#: The variables any one of which configures the process default's value (what makes
#: ``import ua_autotag``, and the launcher's ``.pth`` line, instrument).
VALUE_VARS = (VAR["user_agent"], VAR["isv"], VAR["product"])

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


def has_user_agent(env: Mapping[str, str]) -> bool:
    """Whether ``env`` configures a value (what makes ``import ua_autotag`` instrument)."""
    return any(env.get(var) for var in VALUE_VARS)


def is_true(raw: Optional[str]) -> bool:
    """Whether an environment value means true (``1``, ``true``, ``yes``, ``on``)."""
    return raw is not None and raw.strip().lower() in TRUE
