"""SQLAlchemy: engines and pools connect as the product whose code created them.

SQLAlchemy itself carries no value: every dialect reaches its driver's connect, where
the driver integration tags (psycopg, psycopg2, asyncpg, databricks_sql). What it adds
is a place that connects later, from anywhere: a pool opens connections on whatever
thread checks one out. So a ``Pool`` records the product creating it (``create_engine``
called in a product's code) and ``Pool._create_connection`` connects as that product;
``Engine.dispose`` re-creates the pool as the engine's product, so the pin survives.
An engine created outside any product follows the rule at connect time.
"""

from __future__ import annotations

from ..spec import Integration, Patch, pool_pins

INTEGRATION = Integration(
    name="sqlalchemy",
    supported=">=1.4,<3",
    system="sqlalchemy",
    patches=(
        *pool_pins("sqlalchemy.pool.base", "Pool", "_create_connection", when=None),
        Patch("sqlalchemy.engine.base", "Engine.__init__", pin="create", optional=True),
        # dispose() makes the engine's next pool: it belongs to the engine's creator
        Patch("sqlalchemy.engine.base", "Engine.dispose", pin="fill", optional=True),
    ),
)
