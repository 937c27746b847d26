"""The server launcher's timestamp codec: the same values in PostgreSQL, by the stdlib."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa
from prefect.types._datetime import now
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from deployments import prefect_server
from deployments.local import postgres, processes
from deployments.prefect_server import (
    decode_timestamptz,
    encode_timestamptz,
    use_stdlib_timestamps,
)

VALUES = [
    now(),  # what Prefect writes on Python 3.11: a Pendulum DateTime
    pendulum.datetime(1999, 12, 31, 23, 59, 59, 999999, tz="Europe/Paris"),
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2000, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_a_timestamp_comes_back_as_the_same_instant_in_utc(value: datetime) -> None:
    decoded = decode_timestamptz(encode_timestamptz(value))
    assert decoded == value and decoded.utcoffset() == timedelta(0)
    assert type(decoded) is datetime


def test_the_encoding_counts_microseconds_from_postgres_epoch() -> None:
    assert encode_timestamptz(datetime(2000, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == (1_000_005,)
    assert encode_timestamptz(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)) == (-1_000_000,)


def test_postgres_stores_what_asyncpg_would_have_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[datetime] = []

    def counting(value: datetime) -> tuple[int]:
        encoded.append(value)
        return encode_timestamptz(value)

    monkeypatch.setattr(prefect_server, "encode_timestamptz", counting)
    port = processes.free_port()
    log = tmp_path / "pg.log"
    with postgres.postgres(port, state=tmp_path, log_path=log, persist=False) as url:
        with_codec = asyncio.run(_stored(url, codec=True))
        assert encoded, "the codec was not used"
        assert with_codec == asyncio.run(_stored(url, codec=False))


async def _stored(url: str, *, codec: bool) -> list[tuple[str, datetime]]:
    """Each value written as timestamptz: as PostgreSQL prints it, and as read back."""
    engine = create_async_engine(url)
    if codec:
        event.listen(engine.sync_engine.pool, "connect", use_stdlib_timestamps)
    statement = sa.text("select cast(:t as timestamptz)::text, cast(:t as timestamptz)")
    try:
        async with engine.connect() as connection:
            return [tuple((await connection.execute(statement, {"t": v})).one()) for v in VALUES]
    finally:
        await engine.dispose()
