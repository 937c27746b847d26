"""Start, watch and stop the local stack's server processes (used by `make up` and tests)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MINISTACK_BIN = REPO / ".venv-ministack" / "bin" / "ministack"


class PortInUse(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise PortInUse(
                f"Port {port} on 127.0.0.1 is already taken, so {what} cannot start there. "
                "Stop whatever holds it (`make down` stops a stack left running) "
                "or choose another port."
            )


def stored_secret(path: Path) -> str:
    """A random secret, made the first time and kept in `path` (mode 600, out of git and logs)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def start(
    args: list[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start `args` in its own process group, output to `log_path` (`popen`: e.g. `user`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            **popen,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the process group (graceful: MiniStack saves state), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ministack_env(port: int, state_dir: Path | None) -> dict[str, str]:
    env = {"GATEWAY_PORT": str(port), "BIND_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    if state_dir is not None:
        env |= {
            "PERSIST_STATE": "1",
            "STATE_DIR": str(state_dir / "state"),
            "S3_PERSIST": "1",
            "S3_DATA_DIR": str(state_dir / "s3"),
        }
    return env


@contextlib.contextmanager
def ministack(port: int, *, log_path: Path, state_dir: Path | None = None) -> Iterator[str]:
    """Run MiniStack on 127.0.0.1:`port` and yield its endpoint URL."""
    if not MINISTACK_BIN.exists():
        raise RuntimeError(f"{MINISTACK_BIN} is missing: run `make .venv-ministack`.")
    check_port_free(port, "MiniStack")
    endpoint = f"http://127.0.0.1:{port}"
    process = start([str(MINISTACK_BIN)], log_path=log_path, env=ministack_env(port, state_dir))
    try:
        wait_until(
            lambda: still_running(process, log_path) and http_ok(f"{endpoint}/_ministack/health"),
            timeout=60,
            what=f"MiniStack on {endpoint}",
        )
        yield endpoint
    finally:
        stop(process)


def still_running(process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"process exited with {process.returncode}; log tail:\n{tail}")
    return True
