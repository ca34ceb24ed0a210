"""psycopg2: ``application_name`` on every connection, one connect span each.

``psycopg2.connect`` builds the final DSN (``extensions.make_dsn``) and hands it to
``psycopg2._connect``, a C function it looks up at call time. Wrapping ``_connect``
covers ``connect``, a ``connect`` bound early, URIs, ``connection_factory``, the
``psycopg2.pool`` classes and SQLAlchemy, with the DSN already final. The DSN is
parsed and rebuilt with psycopg2's own ``parse_dsn`` / ``make_dsn`` (its quoting;
a URI comes back as a key=value string), and only when the value changes.
"""

from __future__ import annotations

from typing import Any

from ..spec import Integration, Patch, Tag, argument, pool_pins, with_argument
from .psycopg import tag_params


def _before_connect(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    from psycopg2.extensions import make_dsn, parse_dsn

    dsn = argument(args, kwargs, 0, "dsn")
    new = tag_params(tag, parse_dsn(dsn or ""))
    if new is None:
        return args, kwargs
    # psycopg2's own quoting, from the parsed parameters (one parse less than make_dsn(dsn, ...))
    return with_argument(args, kwargs, 0, "dsn", make_dsn(**new))


INTEGRATION = Integration(
    name="psycopg2",
    supported=">=2.8,<3",
    system="postgresql",
    patches=(
        Patch("psycopg2", "_connect", before=_before_connect, span=True, essential=True),
        *pool_pins("psycopg2.pool", "AbstractConnectionPool", "_connect"),
    ),
)
