"""`make reset`: remove every piece of the local stack's state, wherever it lives.

Everything `make up` keeps is in the state folder (`.state/`: MiniStack's data, the logs,
the keys, the Prefect home, the database password, PostgreSQL's data), except, as root,
PostgreSQL's folder: it lives in the temporary folder (see `deployments.local.postgres`),
at the path `.state/postgres-home` records. Both go. Refused while the stack runs.

The standard library only (with `deployments.local.postgres`, which needs no more), so
it works before `make install` and after `make clean`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from deployments.local import postgres, processes

PID_FILE = "up.pid"


class StackRunning(RuntimeError):
    pass


def state_locations(state: Path) -> list[Path]:
    """Where the stack's state lives: the state folder, and the database's folder if apart."""
    locations = [state]
    home = postgres.home_dir(state) if state.is_dir() else None
    if home is not None and not home.is_relative_to(state):
        locations.append(home)
    return locations


def reset(state: Path) -> list[Path]:
    """Remove the state of the stack kept in `state`; the paths removed."""
    _refuse_while_running(state)
    removed = []
    for location in state_locations(state):
        if os.path.lexists(location):
            shutil.rmtree(location)
            removed.append(location)
    return removed


def _refuse_while_running(state: Path) -> None:
    pid_file = state / PID_FILE
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().strip() or 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # left by a stack that was killed
    except PermissionError:
        pass  # alive, someone else's
    raise StackRunning(
        f"The local stack is running (pid {pid}); stop it first (`make down`), then reset."
    )


def main(argv: list[str]) -> int:
    state = processes.REPO / (argv[0] if argv else ".state")
    try:
        removed = reset(state.resolve())
    except (StackRunning, processes.UnsafePath) as exc:
        print(f"make reset: {exc}", file=sys.stderr)
        return 1
    for path in removed:
        print(f"Removed {path}")
    if not removed:
        print("Nothing to remove: no local state.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
