"""The local stack: MiniStack, a Prefect server, a worker and the API, wired like AWS.

Used by `make up` (fixed ports, state kept in `.state/`) and by the end-to-end tests
(free ports, a temporary folder). Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deployments.local import postgres, processes
from deployments.local.phase import Say, phase
from deployments.local.processes import REPO

WORK_POOL = "image-pipeline"
# Flow runs forked from a warm forkserver instead of a new interpreter each
# (deployments/worker.py).
WORKER_TYPE = "warm-process"
CREDENTIALS_BLOCK = "image-pipeline-aws"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Ports:
    ministack: int
    prefect: int
    api: int
    worker: int  # the worker's health check
    postgres: int  # the Prefect server's database

    @classmethod
    def free(cls) -> Ports:
        return cls(*(processes.free_port() for _ in range(5)))


@dataclass(frozen=True)
class Stack:
    ports: Ports
    state: Path
    api_key: str  # the webhook's: EventBridge sends it
    operator_key: str  # for people and scripts: reads, lists and reprocesses
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. a fault rate for `make soak`

    @classmethod
    def throwaway(cls, prefix: str, extra_env: tuple[tuple[str, str], ...] = ()) -> Stack:
        """A stack on free ports with a new state folder and new keys (benchmarks)."""
        return cls(
            ports=Ports.free(),
            state=Path(tempfile.mkdtemp(prefix=prefix)),
            api_key=uuid.uuid4().hex,
            operator_key=uuid.uuid4().hex,
            extra_env=extra_env,
        )

    @property
    def ministack_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ministack}"

    @property
    def prefect_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prefect}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def webhook_url(self) -> str:
        return f"{self.api_url}/events/s3"

    @property
    def operator_headers(self) -> dict[str, str]:
        """What an operator sends to the status API."""
        return {"Authorization": f"Bearer {self.operator_key}"}

    def env(self) -> dict[str, str]:
        """The environment every process of the stack shares."""
        return {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "IMAGE_PIPELINE_HOME": str(REPO),
            # prefect.yaml's deployments go to the local process pool.
            "IMAGE_PIPELINE_WORK_POOL": WORK_POOL,
            "IMAGE_PIPELINE_AWS_ENDPOINT_URL": self.ministack_url,
            "IMAGE_PIPELINE_AWS_CREDENTIALS_BLOCK": CREDENTIALS_BLOCK,
            "IMAGE_PIPELINE_WEBHOOK_API_KEY": self.api_key,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PREFECT_HOME": str(self.state / "prefect"),
            "PREFECT_API_URL": f"{self.prefect_url}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Poll twice a second, not every 10 s: an upload completes in seconds, and an
            # idle poll costs the server one cheap query.
            "PREFECT_WORKER_QUERY_SECONDS": "0.5",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
            "PREFECT_WORKER_WEBSERVER_PORT": str(self.ports.worker),
            # Labels without AWS (the emulator has no Rekognition): the CPU classifier, its
            # model converted once into the state folder.
            "IMAGE_PIPELINE_LABELS": "local",
            "IMAGE_PIPELINE_MODEL_CACHE_DIR": str(self.state / "models"),
            **dict(self.extra_env),
        }

    def log(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"


def api_key(state: Path) -> str:
    """The webhook key, made once per state folder."""
    return processes.stored_secret(state / "webhook-api-key")


OPERATOR_KEY_FILE = "operator-api-key"


def operator_key(state: Path) -> str:
    """The operator key, made once per state folder."""
    return processes.stored_secret(state / OPERATOR_KEY_FILE)


class Service:
    """One long-running process of the stack, which can be stopped and started again."""

    def __init__(
        self,
        stack: Stack,
        name: str,
        args: list[str],
        ready_url: str,
        env: dict[str, str] | None = None,  # for this service alone, e.g. a secret
    ) -> None:
        self.stack, self.name, self.args, self.ready_url = stack, name, args, ready_url
        self.env = {**stack.env(), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.stack.log(self.name)
        process = self.process = processes.start(self.args, log_path=log, env=self.env)
        try:
            processes.wait_until(
                lambda: processes.still_running(process, log) and processes.http_ok(self.ready_url),
                timeout=120,
                what=f"{self.name} ({self.ready_url})",
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """An outage: the service is down inside the block and up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Running:
    """A started stack and its services (MiniStack is not one: it keeps no state of ours)."""

    stack: Stack
    prefect_server: Service
    worker: Service
    api: Service


@contextlib.contextmanager
def running(
    stack: Stack, *, worker_limit: int = 4, persist: bool = False, say: Say | None = None
) -> Iterator[Running]:
    """Start the whole stack, provision and deploy; stop everything on exit.

    `say` gets a line as each phase starts and one as it ends, with its time (`make up`).
    """
    for port, what in [
        (stack.ports.ministack, "MiniStack"),
        (stack.ports.prefect, "the Prefect server"),
        (stack.ports.api, "the API"),
        (stack.ports.worker, "the worker's health check"),
        (stack.ports.postgres, "PostgreSQL"),
    ]:
        processes.check_port_free(port, what)
    with contextlib.ExitStack() as services:
        with phase("start MiniStack (AWS emulator)", say):
            services.enter_context(
                processes.ministack(
                    stack.ports.ministack,
                    log_path=stack.log("ministack"),
                    state_dir=stack.state / "ministack" if persist else None,
                )
            )
        with phase("start PostgreSQL", say):
            database = services.enter_context(
                postgres.postgres(
                    stack.ports.postgres,
                    state=stack.state,
                    log_path=stack.log("postgres"),
                    persist=persist,
                )
            )
        if stack.env()["IMAGE_PIPELINE_LABELS"] == "local":
            # Converted now, not by the first flow runs (about 2 s of CPU each).
            with phase("convert the local labels model", say):
                _prepare_labels_model(stack)
        with phase("start the Prefect server", say):
            prefect_server = services.enter_context(_prefect_server(stack, database))
        with phase("provision the AWS resources", say):
            _provision(stack)
        with phase("deploy the flows", say):
            _deploy(stack)
        with phase("start the worker", say):
            worker = services.enter_context(_worker(stack, worker_limit))
        with phase("start the API", say):
            api = services.enter_context(_api(stack))
        yield Running(stack, prefect_server, worker, api)


# The server records task-run states and events from the runs' event stream. By default it
# writes each task-run state in a transaction of its own: under a burst that is most of
# the server's work. Batching them costs up to a second before a state shows in the UI.
SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


def _prepare_labels_model(stack: Stack) -> None:
    from image_pipeline import classifier

    classifier.prepare(Path(stack.env()["IMAGE_PIPELINE_MODEL_CACHE_DIR"]))


def _prefect_server(stack: Stack, database_url: str) -> Service:
    # `prefect server start` with its timestamps written by the stdlib (see the module).
    args = [sys.executable, "-m", "deployments.prefect_server", "--host", "127.0.0.1"]
    args += ["--port", str(stack.ports.prefect)]
    # Only the server gets the database URL: it carries the password.
    env = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url, **SERVER_TUNING}
    return Service(stack, "prefect-server", args, f"{stack.prefect_url}/api/health", env)


def _worker(stack: Stack, limit: int) -> Service:
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL]
    args += ["--type", WORKER_TYPE, "--limit", str(limit), "--with-healthcheck"]
    # The worker's health check server answers once it has polled the server.
    return Service(stack, "worker", args, f"http://127.0.0.1:{stack.ports.worker}/health")


def _api(stack: Stack) -> Service:
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    args += ["--port", str(stack.ports.api), "--no-access-log"]
    # Only the API checks the operator key; the worker and the server never need it.
    env = {"IMAGE_PIPELINE_OPERATOR_API_KEY": stack.operator_key}
    return Service(stack, "api", args, f"{stack.api_url}/healthz", env)


def _provision(stack: Stack) -> None:
    _run([sys.executable, "-m", "deployments.local.bootstrap", stack.webhook_url], stack)


def _deploy(stack: Stack) -> None:
    prefect = [sys.executable, "-m", "prefect"]
    _drop_pool_of_another_type(stack)
    _run([*prefect, "work-pool", "create", WORK_POOL, "--type", WORKER_TYPE, "--overwrite"], stack)
    _run([*prefect, "--no-prompt", "deploy", "--all"], stack)


def _drop_pool_of_another_type(stack: Stack) -> None:
    """A pool's type cannot change, and a state folder from before the warm worker has a
    `process` pool: delete it, so that it is made again and the deployments move to it."""
    # Imported here: importing Prefect reads its settings, and `make up` sets the stack's
    # environment in its own process before its first Prefect call (deployments/local/up.py).
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: f"{stack.prefect_url}/api"}),
        get_client(sync_client=True) as client,
    ):
        try:
            pool = client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            return
        if pool.type != WORKER_TYPE:
            client.delete_work_pool(WORK_POOL)


def _run(args: list[str], stack: Stack) -> None:
    log = stack.log("provision")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        result = subprocess.run(
            args, cwd=REPO, env={**os.environ, **stack.env()}, stdout=out, stderr=out, check=False
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(args[1:])} failed ({result.returncode}):\n{tail}")
