"""`make audit`: pip-audit of pinned requirements against the loopback OSV mirror.

    python -m deployments.local.audit [--zip PATH | --online] REQUIREMENTS...

Exits non-zero on any finding and on any package that could not be checked.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from deployments.local import osv


def pip_audit_command(requirements: list[Path], osv_url: str | None, cache: Path) -> list[str]:
    """pip-audit on exact pins only (no resolution, so no index), asking an OSV service."""
    command = [sys.executable, "-m", "pip_audit", "--strict", "--disable-pip", "--no-deps"]
    command += ["--progress-spinner", "off", "--cache-dir", str(cache), "-s", "osv"]
    if osv_url is not None:
        command += ["--osv-url", osv_url]
    for path in requirements:
        command += ["-r", str(path)]
    return command


def run_pip_audit(
    requirements: list[Path], osv_url: str | None
) -> subprocess.CompletedProcess[str]:
    """Run pip-audit; `osv_url` None asks the public api.osv.dev."""
    # A fresh cache: an answer remembered from another service must not stand in for this one.
    with tempfile.TemporaryDirectory(prefix="pip-audit-cache-") as cache:
        return subprocess.run(
            pip_audit_command(requirements, osv_url, Path(cache)),
            capture_output=True,
            text=True,
            # A proxy in the environment must not intercept the loopback mirror.
            env={**os.environ, "NO_PROXY": "127.0.0.1"},
            timeout=300,
        )


def audit_offline(requirements: list[Path], zip_path: Path) -> tuple[int, str]:
    """Serve the snapshot on a free loopback port, audit against it; (exit code, report)."""
    snapshot = osv.Snapshot.load(zip_path)
    with osv.serve(snapshot) as server:
        result = run_pip_audit(requirements, f"{server.url}/v1/query")
    source = (
        f"Advisories: PyPI snapshot of {snapshot.date} "
        f"({len(snapshot.records)} OSV records, {zip_path}), served on {server.url}"
    )
    return result.returncode, report(source, result)


def audit_online(requirements: list[Path]) -> tuple[int, str]:
    result = run_pip_audit(requirements, None)
    return result.returncode, report("Advisories: api.osv.dev (live)", result)


def report(source: str, result: subprocess.CompletedProcess[str]) -> str:
    verdict = "passed" if result.returncode == 0 else f"FAILED (pip-audit exit {result.returncode})"
    parts = [source, result.stdout.rstrip(), result.stderr.rstrip(), f"Audit {verdict}"]
    return "\n".join(part for part in parts if part)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path, nargs="+", help="pinned requirements files")
    parser.add_argument("--zip", type=Path, default=osv.DEFAULT_ZIP, help="OSV snapshot zip")
    parser.add_argument("--online", action="store_true", help="ask api.osv.dev instead")
    args = parser.parse_args(argv)
    if args.online:
        code, text = audit_online(args.requirements)
    elif not args.zip.is_file():
        code, text = 2, f"No advisory snapshot at {args.zip}: pass --zip PATH, or --online."
    else:
        code, text = audit_offline(args.requirements, args.zip)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
