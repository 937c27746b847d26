"""`prefect server start`, with PostgreSQL timestamps written by the standard library.

On Python 3.11 and 3.12 Prefect's datetimes are Pendulum objects. asyncpg writes a
timestamp by subtracting its epoch from it, and Pendulum's subtraction builds a calendar
`Interval` in Python: a sixth of the server's CPU during a burst of uploads went there.
Registering asyncpg's documented tuple codec for `timestamptz` (microseconds since
2000-01-01 UTC) makes the same subtraction the C one of `datetime`. The values written
and read are the same; only the cost changes.

    python -m deployments.prefect_server --host 127.0.0.1 --port 4200
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_timestamptz(value: datetime) -> tuple[int]:
    """Microseconds since PostgreSQL's epoch; a naive value is local time, as asyncpg has it."""
    # The stdlib's methods, called directly: a Pendulum subclass would run its own.
    utc = datetime.astimezone(value, UTC)
    return (datetime.__sub__(utc, POSTGRES_EPOCH) // MICROSECOND,)


def decode_timestamptz(value: tuple[int]) -> datetime:
    """An aware UTC datetime, as asyncpg's own codec returns."""
    return POSTGRES_EPOCH + value[0] * MICROSECOND


def use_stdlib_timestamps(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy's `connect` event: set the codec on each new asyncpg connection."""
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    if isinstance(dbapi_connection, AsyncAdapt_asyncpg_connection):
        dbapi_connection.run_async(
            lambda connection: connection.set_type_codec(
                "timestamptz",
                schema="pg_catalog",
                encoder=encode_timestamptz,
                decoder=decode_timestamptz,
                format="tuple",
            )
        )


def main(args: list[str]) -> int:
    event.listen(Pool, "connect", use_stdlib_timestamps)
    from prefect.cli import app

    sys.argv = ["prefect", "server", "start", *args]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
