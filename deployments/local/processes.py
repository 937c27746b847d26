"""Start, watch and stop the local stack's server processes (used by `make up` and tests)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import stat
import subprocess
import tempfile
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


class UnsafePath(RuntimeError):
    pass


def stored_secret(path: Path) -> str:
    """A random secret, made the first time and kept in `path` (mode 600, out of git and logs).

    Never through a link: a planted one would receive the secret, or choose it.
    """
    if not os.path.lexists(path):
        with contextlib.suppress(FileExistsError):  # another process made it first
            _publish(path, secrets.token_urlsafe(32), replace=False)
    return read_private(path)


def write_private(path: Path, text: str) -> None:
    """Put `text` in `path` (mode 600), replacing whatever is there, never writing through it."""
    _publish(path, text, replace=True)


def read_private(path: Path) -> str:
    """The text of `path`, refused unless it is a regular file of ours that only we can read."""
    try:
        # O_NONBLOCK: a planted FIFO must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link; refusing to use it.") from None
        raise
    with os.fdopen(fd) as file:
        check_private(path, os.fstat(fd), kind=stat.S_IFREG, others=0o077)
        return file.read().strip()


def check_private(path: Path, info: os.stat_result, *, kind: int, others: int) -> None:
    """Refuse `path` (already lstat-ed or fstat-ed) unless it is a `kind` of ours without
    the `others` mode bits: whoever else could write it could plant what we run or read."""
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif stat.S_IFMT(info.st_mode) != kind:
        problem = "is not a " + ("folder" if kind == stat.S_IFDIR else "regular file")
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to us (uid {os.geteuid()})"
    elif info.st_mode & others:
        problem = f"has mode {stat.S_IMODE(info.st_mode):o}, open to others"
    else:
        return
    raise UnsafePath(f"{path} {problem}; refusing to use it.")


def _publish(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to a new private file beside `path`, then put it there whole: a rename
    or a hard link replaces or refuses a link at `path`, never follows it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # 600, O_EXCL
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # FileExistsError if anything, even a dangling link, is there
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


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
