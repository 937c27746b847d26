"""`make reset` removes every piece of the local stack's state, the database's folder
included (as root it lives in the temporary folder), and nothing while the stack runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.local import postgres, processes, stack
from deployments.local.reset import state_locations


@pytest.fixture
def state() -> Iterator[Path]:
    """A state folder as `make up` leaves it: keys, logs and a real PostgreSQL database."""
    folder = Path(tempfile.mkdtemp(prefix="reset-test-")) / ".state"
    folder.mkdir()
    stack.api_key(folder), stack.operator_key(folder)
    (folder / "logs").mkdir()
    (folder / "logs" / "api.log").write_text("a log line\n")
    port = processes.free_port()
    with postgres.postgres(port, state=folder, log_path=folder / "logs" / "pg.log", persist=True):
        pass
    home = postgres.home_dir(folder)
    try:
        yield folder
    finally:
        for path in (folder.parent, home):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)


def reset(state: Path) -> subprocess.CompletedProcess[str]:
    # As `make reset` runs it, from the repository's root.
    return subprocess.run(
        [sys.executable, "-m", "deployments.local.reset", str(state)],
        cwd=processes.REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_removes_the_state_folder_and_the_database_wherever_it_lives(state: Path) -> None:
    database = postgres.home_dir(state)
    assert database is not None and (database / "data" / "PG_VERSION").exists()
    locations = state_locations(state)
    assert locations[0] == state
    if os.geteuid() == 0:  # PostgreSQL ran as nobody, from the temporary folder
        assert locations == [state, database]
        assert not database.is_relative_to(state)

    result = reset(state)

    assert result.returncode == 0, result.stderr
    assert not state.exists()
    assert not database.exists()
    for location in locations:
        assert f"Removed {location}" in result.stdout


def test_refuses_while_the_stack_runs_and_removes_nothing(state: Path) -> None:
    (state / "up.pid").write_text(str(os.getpid()))  # a live process: "the stack"

    result = reset(state)

    assert result.returncode == 1
    assert "make down" in result.stderr
    assert (state / "webhook-api-key").exists()
    database = postgres.home_dir(state)
    assert database is not None and database.exists()


def test_a_stale_pid_file_does_not_block_it(state: Path) -> None:
    dead = subprocess.Popen(["true"])  # a pid that no longer runs
    dead.wait()
    (state / "up.pid").write_text(str(dead.pid))

    assert reset(state).returncode == 0
    assert not state.exists()


def test_nothing_to_remove_is_fine(tmp_path: Path) -> None:
    result = reset(tmp_path / ".state")
    assert result.returncode == 0 and "Nothing to remove" in result.stdout
