"""`make down`: stop a `make up` stack left running in the background."""

from __future__ import annotations

import os
import signal
import sys

from deployments.local import processes
from image_pipeline.settings import get_settings


def main() -> int:
    pid_file = processes.REPO / get_settings().state_dir / "up.pid"
    if not pid_file.exists():
        print("make down: no stack is running (no up.pid).")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"make down: the stack (pid {pid}) was not running; cleaning up.")
        pid_file.unlink(missing_ok=True)
        return 0
    processes.wait_until(lambda: not _alive(pid), timeout=60, what=f"the stack (pid {pid})")
    print("make down: stopped.")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
