"""Threads and asyncio tasks connecting while instrument() is re-targeted and scopes are active.

Every connection must carry exactly the value in force for it — the server says which.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ua_autotag
from tests import pg

A = "AcmePartner_ProductA/1.0"
B = "AcmePartner_ProductB/2.0"
THREADS = 16
PER_THREAD = 6
TASKS = 100


def _app_name(conn: Any) -> str:
    return str(conn.execute(pg.APPLICATION_NAME_SQL).fetchone()[0])


def test_threads_with_scopes_while_retargeting(pg_dsn: str) -> None:
    """Each connection carries the value in force for it: its scope's, else the global
    value of the moment. A connect that no re-target overlapped has exactly one value in
    force (the re-targeter publishes an odd generation while it switches, even after)."""
    import psycopg

    ua_autotag.instrument(A, spans=False)
    values = [A]  # values[generation // 2]: the global value of a settled generation
    generation = [0]
    seen: list[tuple[str | None, int, int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def worker(index: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                scoped = f"Scope{index}_Product/{i}" if i % 2 == 0 else None
                before = generation[0]
                if scoped is not None:
                    with ua_autotag.user_agent(scoped), psycopg.connect(pg_dsn) as conn:
                        got = _app_name(conn)
                else:
                    with psycopg.connect(pg_dsn) as conn:
                        got = _app_name(conn)
                with lock:
                    seen.append((scoped, before, generation[0], got))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    start.wait()
    for n in range(40):  # re-target while the workers connect
        value = A if n % 2 == 0 else B  # ends on B: a stale A shows
        generation[0] += 1  # odd: switching
        ua_autotag.instrument(value, spans=False)
        values.append(value)
        generation[0] += 1  # even: settled on values[-1]
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == THREADS * PER_THREAD
    settled = 0
    for scoped, before, after, got in seen:
        if scoped is not None:
            assert got == scoped  # the scope's value, exactly, once
        elif before == after and before % 2 == 0:
            settled += 1
            assert got == values[before // 2]  # no re-target overlapped: that one value
        else:
            in_force = set(values[before // 2 : (after + 1) // 2 + 1])
            assert got in in_force
    assert settled > 0  # the exact check ran


def test_asyncio_gather_of_100_connects_with_task_scopes(pg_dsn: str) -> None:
    import psycopg

    ua_autotag.instrument(A, spans=False)
    limit = asyncio.Semaphore(20)  # stay well below the server's max_connections

    async def one(index: int) -> tuple[str | None, str]:
        scoped = f"Task{index}_Product" if index % 3 else None
        async with limit:
            if scoped is None:
                conn = await psycopg.AsyncConnection.connect(pg_dsn)
            else:
                with ua_autotag.user_agent(scoped):
                    conn = await psycopg.AsyncConnection.connect(pg_dsn)
            async with conn:
                cur = await conn.execute(pg.APPLICATION_NAME_SQL)
                row = await cur.fetchone()
        return scoped, str(row[0])

    async def main() -> list[tuple[str | None, str]]:
        return await asyncio.gather(*(one(i) for i in range(TASKS)))

    results = asyncio.run(main())
    assert len(results) == TASKS
    for scoped, got in results:
        assert got == (scoped or A)
