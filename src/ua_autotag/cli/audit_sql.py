"""``ua-autotag audit-sql``: the ``system.access.audit`` query that finds the tag."""

from __future__ import annotations

import argparse
import os
import sys

from ..settings import VALUE_OPTIONS
from .common import Command, add_options, resolve_args

__all__ = ["COMMANDS", "LIKE_ESCAPE", "audit_sql", "like_pattern", "sql_string"]

LIKE_ESCAPE = "!"


def sql_string(text: str) -> str:
    """``text`` as a Databricks SQL string literal (backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
    ua = resolve_args(args, dict(os.environ)).user_agent
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


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, VALUE_OPTIONS, "the User-Agent (default: UA_AUTOTAG_* environment)")
    parser.add_argument(
        "--days", type=_positive_days, default=2, metavar="N", help="look back N days (default 2)"
    )


COMMANDS = (
    Command(
        "audit-sql",
        _cmd_audit_sql,
        _arguments,
        help="print the system.access.audit query that finds your tag in Databricks",
        description="Print the partner guide's system.access.audit query for the configured "
        "User-Agent (quotes and LIKE wildcards escaped), and how to check Query History.",
    ),
)
