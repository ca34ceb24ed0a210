"""``ua-autotag record``: local endpoints that print the tag every connection carries.

For a partner's own tests and for a look by hand: the same peers ``verify`` uses - the
HTTP header recorder (a stand-in Databricks workspace for the SDK, the SQL connector and
REST clients) and, with ``--spark``, the Spark Connect gRPC peer - started on 127.0.0.1,
plus, with ``--pg-dsn``, a watcher of that PostgreSQL's ``pg_stat_activity``. Each
arrival is printed on one line (JSON lines with ``--json``) as it comes: the User-Agent
a request carried, a Spark request's ``client_type``, a new backend's
``application_name``. In a test suite, the peers themselves are importable:
``ua_autotag.verify.http_peer.HeaderRecorder`` and
``ua_autotag.verify.spark_peer.SparkConnectPeer``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

from .common import CliError, Command, scrubbed

__all__ = ["COMMANDS", "PostgresWatcher"]

#: every client backend but the watcher's own
_ACTIVITY_SQL = (
    "SELECT pid, backend_start::text, application_name, usename, datname "
    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


class PostgresWatcher:
    """Polls ``pg_stat_activity`` and yields each backend it has not seen yet.

    A connection shows there only while it is open: one shorter than the poll interval
    can be missed (for an exact check, read ``current_setting('application_name')``
    inside your own connection).
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.seen: set[Tuple[int, str]] = set()
        self.conn: Any = None

    def open(self) -> None:
        try:
            import psycopg

            conn = psycopg.connect(self.dsn, autocommit=True, application_name="ua-autotag record")
        except ImportError:
            try:
                import psycopg2
            except ImportError:
                raise CliError("--pg-dsn needs psycopg or psycopg2 installed") from None
            conn = psycopg2.connect(self.dsn, application_name="ua-autotag record")
            conn.autocommit = True
        except Exception as exc:
            raise CliError(f"--pg-dsn: cannot connect: {type(exc).__name__}: {exc}") from None
        self.conn = conn
        self.seen = {(row[0], row[1]) for row in self._rows()}  # already there: not news

    def _rows(self) -> List[Tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(_ACTIVITY_SQL)
        return list(cur.fetchall())

    def poll(self) -> Iterator[Dict[str, Any]]:
        for pid, started, name, user, db in self._rows():
            if (pid, started) in self.seen:
                continue
            self.seen.add((pid, started))
            yield {"peer": "postgresql", "pid": pid, "application_name": name,
                   "user": user, "database": db}  # fmt: skip

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _http(peer: Any, done: int) -> Tuple[int, List[Dict[str, Any]]]:
    new = peer.snapshot()[done:]
    return done + len(new), [
        {"peer": "http", "method": r.method, "path": r.path, "user_agent": r.user_agent}
        for r in new
    ]


def _spark(peer: Any, done: int) -> Tuple[int, List[Dict[str, Any]]]:
    new = peer.requests[done:]
    return done + len(new), [
        {"peer": "spark_connect", "method": c.method, "client_type": c.client_type} for c in new
    ]


def _line(event: Dict[str, Any], as_json: bool) -> str:
    event = scrubbed(event)
    if as_json:
        return json.dumps(event)
    if event.get("listening"):
        return f"{event['peer']:<11} listening: {event['url']}  ({event['hint']})"
    if event["peer"] == "http":
        return f"http        {event['method']} {event['path']}  User-Agent: {event['user_agent']}"
    if event["peer"] == "spark_connect":
        return f"spark       {event['method']}  client_type: {event['client_type']}"
    return (
        f"postgresql  pid {event['pid']} ({event['user']}@{event['database']})  "
        f"application_name: {event['application_name']}"
    )


def _start(args: argparse.Namespace) -> Tuple[List[Any], List[Dict[str, Any]]]:
    """Start the peers asked for; returns them and one "listening" event per peer."""
    from ..verify.http_peer import HeaderRecorder

    peers: List[Any] = []
    events = []
    if not args.no_http:
        http = HeaderRecorder().start()
        peers.append(http)
        events.append({
            "peer": "http", "listening": True, "url": http.url,
            "hint": "REST clients tag it as a Databricks host with UA_AUTOTAG_REST_HOSTS="
            "127.0.0.1 (or rest_hosts=[...]); the SDK: host=<url>, the SQL connector: "
            "_connection_uri=<url>/x",
        })  # fmt: skip
    if args.spark:
        try:
            from ..verify.spark_peer import SparkConnectPeer

            spark = SparkConnectPeer().start()
        except ImportError as exc:
            raise CliError(f"--spark needs pyspark (Spark Connect) and grpcio: {exc}") from None
        peers.append(spark)
        events.append({"peer": "spark_connect", "listening": True, "url": spark.url,
                       "hint": "SparkSession.builder.remote(<url>)"})  # fmt: skip
    return peers, events


def _cmd_record(args: argparse.Namespace) -> int:
    watcher = PostgresWatcher(args.pg_dsn) if args.pg_dsn else None
    if args.no_http and not args.spark and watcher is None:
        raise CliError("nothing to record: drop --no-http, or add --spark or --pg-dsn")
    if watcher is not None:
        watcher.open()
    peers, events = _start(args)
    if watcher is not None:
        events.append({"peer": "postgresql", "listening": True, "url": "pg_stat_activity",
                       "hint": "new client backends and their application_name"})  # fmt: skip

    def say(event: Dict[str, Any]) -> None:
        sys.stdout.write(_line(event, args.json) + "\n")
        sys.stdout.flush()

    for event in events:
        say(event)
    pollers: List[Tuple[Any, Callable[[Any, int], Tuple[int, List[Dict[str, Any]]]]]] = [
        (p, _http if p.__class__.__name__ == "HeaderRecorder" else _spark) for p in peers
    ]
    done = [0] * len(pollers)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while deadline is None or time.monotonic() < deadline:
            for i, (peer, read) in enumerate(pollers):
                done[i], new = read(peer, done[i])
                for event in new:
                    say(event)
            if watcher is not None:
                for event in watcher.poll():
                    say(event)
            time.sleep(args.interval)
    except KeyboardInterrupt:  # the usual way to stop it
        pass
    finally:
        for peer in peers:
            peer.stop()
        if watcher is not None:
            watcher.close()
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-http", action="store_true", help="no HTTP header recorder")
    parser.add_argument("--spark", action="store_true", help="also a Spark Connect gRPC peer")
    parser.add_argument(
        "--pg-dsn",
        metavar="DSN",
        help="watch this PostgreSQL's pg_stat_activity for new connections",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.1, metavar="SECONDS", help="poll interval (0.1)"
    )


COMMANDS = (
    Command(
        "record",
        _cmd_record,
        _arguments,
        help="local endpoints that print the tag each connection carries (for your tests)",
        description="Start on 127.0.0.1 the peers `verify` uses - an HTTP header recorder "
        "(the SDK, the SQL connector, REST clients) and, with --spark, a Spark Connect "
        "peer - and, with --pg-dsn, watch that PostgreSQL's pg_stat_activity; print what "
        "each connection carried as it arrives (the User-Agent, client_type, "
        "application_name). The first lines give each peer's URL. Stops on Ctrl-C or after "
        "--duration. In Python tests import the peers instead: "
        "ua_autotag.verify.http_peer.HeaderRecorder, ua_autotag.verify.spark_peer."
        "SparkConnectPeer. Never prints a secret.",
    ),
)
