"""`make audit`: the loopback OSV mirror of the advisory snapshot, and pip-audit against it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from deployments.local import audit, osv, processes

JINJA2_REDOS = "PYSEC-2021-66"  # jinja2 < 2.11.3


@pytest.fixture(scope="module")
def snapshot() -> osv.Snapshot:
    return osv.Snapshot.load(osv.DEFAULT_ZIP)


@pytest.fixture(scope="module")
def mirror(snapshot: osv.Snapshot) -> Iterator[osv.OsvServer]:
    with osv.serve(snapshot) as server:
        yield server


def call(url: str, payload: Any = None) -> tuple[int, Any]:
    """(status, JSON body) of a GET, or of a POST when there is a payload."""
    data = None if payload is None else json.dumps(payload).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def pypi(name: str, version: str) -> dict[str, Any]:
    return {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}


def requirements(tmp_path: Path, *pins: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("".join(f"{pin}\n" for pin in pins))
    return path


def finding_rows(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.split()[:1] == [name]]


# Version matching, on hand-made records.


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.9", False),
        ("1.0", True),
        ("1.4.9", True),
        ("1.5", False),
        ("1.7", False),
        ("2.0rc1", False),
        ("2.2", True),
        ("2.3", False),
    ],
)
def test_introduced_and_fixed_events_bound_each_range(version: str, expected: bool) -> None:
    # Out of order on purpose: the schema says to sort events by version first.
    events = [{"fixed": "2.3"}, {"introduced": "2.0"}, {"introduced": "1.0"}, {"fixed": "1.5"}]
    assert osv.in_range(Version(version), events) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.dev0", True), ("1.2", True), ("1.2.post1", False), ("1.3", False)],
)
def test_last_affected_includes_its_own_version(version: str, expected: bool) -> None:
    events = [{"introduced": "0"}, {"last_affected": "1.2"}]
    assert osv.in_range(Version(version), events) is expected


def test_an_unreadable_bound_fails_closed() -> None:
    # Real records have e.g. last_affected "2.6.0-NA" (torch); better a finding than a miss.
    assert osv.in_range(Version("9.0"), [{"introduced": "0"}, {"last_affected": "2.6.0-NA"}])


def test_a_versions_list_matches_by_pep440_equality() -> None:
    entry = {"package": {"name": "demo", "ecosystem": "PyPI"}, "versions": ["1.0", "1.1rc1"]}
    assert osv.affects(entry, "1.0.0")
    assert osv.affects(entry, "1.1-rc.1")
    assert not osv.affects(entry, "1.0.1")


def test_queries_normalise_names_and_leave_withdrawn_records_out() -> None:
    def record(id: str, name: str, **extra: str) -> dict[str, Any]:
        ranges = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2"}]}]
        affected = [{"package": {"name": name, "ecosystem": "PyPI"}, "ranges": ranges}]
        return {"id": id, "modified": "2026-01-01T00:00:00Z", "affected": affected, **extra}

    snapshot = osv.Snapshot.of(
        [record("A", "Zope.Interface"), record("B", "zope-interface", withdrawn="2026-02-01")],
        "2026-02-02",
    )
    assert [r["id"] for r in snapshot.query("zope_interface", "1.0")] == ["A"]
    assert snapshot.query("zope_interface", "2.0") == []
    assert [r["id"] for r in snapshot.query("ZOPE.interface", None)] == ["A"]


def test_the_snapshot_date_comes_from_the_readme_else_the_newest_sane_record(
    tmp_path: Path, snapshot: osv.Snapshot
) -> None:
    readme = osv.DEFAULT_ZIP.with_name("README.md").read_text()
    assert re.search(rf"current\s+to\s+{snapshot.date}", readme)
    records = [
        {"id": "old", "modified": "2024-05-06T07:08:09Z"},
        {"id": "new", "modified": "2025-03-04T05:06:07.123456Z"},
        {"id": "typo", "modified": "2999-01-01T00:00:00Z"},  # as PYSEC-2025-19 says 2027
    ]
    assert osv.snapshot_date(tmp_path / "missing.md", records) == "2025-03-04"


# The HTTP API, on a real server over the real snapshot.


def test_query_returns_whole_records_and_an_empty_object_when_clear(
    mirror: osv.OsvServer,
) -> None:
    status, body = call(f"{mirror.url}/v1/query", pypi("Jinja2", "2.11.2"))
    assert status == 200
    found = {v["id"]: v for v in body["vulns"]}
    assert JINJA2_REDOS in found
    assert found[JINJA2_REDOS]["affected"][0]["package"]["name"] == "jinja2"
    _, fixed = call(f"{mirror.url}/v1/query", pypi("jinja2", "2.11.3"))
    assert JINJA2_REDOS not in {v["id"] for v in fixed["vulns"]}
    assert call(f"{mirror.url}/v1/query", pypi("jinja2", "3.1.6")) == (200, {})


def test_querybatch_returns_ids_and_modified_in_query_order(mirror: osv.OsvServer) -> None:
    queries = [pypi("jinja2", "3.1.6"), pypi("jinja2", "2.11.2")]
    status, body = call(f"{mirror.url}/v1/querybatch", {"queries": queries})
    assert status == 200
    clear, vulnerable = body["results"]
    assert clear == {}
    assert all(set(v) == {"id", "modified"} for v in vulnerable["vulns"])
    assert JINJA2_REDOS in {v["id"] for v in vulnerable["vulns"]}


def test_vulns_by_id_including_withdrawn_ones(mirror: osv.OsvServer) -> None:
    status, record = call(f"{mirror.url}/v1/vulns/{JINJA2_REDOS}")
    assert (status, record["id"]) == (200, JINJA2_REDOS)
    # py's only advisory was withdrawn: out of queries, still readable by id.
    assert call(f"{mirror.url}/v1/query", pypi("py", "1.11.0")) == (200, {})
    assert call(f"{mirror.url}/v1/vulns/PYSEC-2022-42969")[1]["withdrawn"]
    assert call(f"{mirror.url}/v1/vulns/PYSEC-0000-0")[0] == 404


@pytest.mark.parametrize(
    "query",
    [
        {"package": {"name": "lodash", "ecosystem": "npm"}, "version": "4.17.0"},
        pypi("jinja2", "not a version"),
        {"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"},
    ],
)
def test_questions_it_cannot_answer_are_errors_not_all_clears(
    mirror: osv.OsvServer, query: dict[str, Any]
) -> None:
    assert call(f"{mirror.url}/v1/query", query)[0] == 400
    assert call(f"{mirror.url}/v1/querybatch", {"queries": [query]})[0] == 400


def test_the_context_manager_stops_the_server(snapshot: osv.Snapshot) -> None:
    with osv.serve(snapshot) as server:
        port = server.server_address[1]
        assert processes.http_ok(f"{server.url}/v1/vulns/{JINJA2_REDOS}")
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "still listening after the block"


def test_runs_as_a_module_on_a_given_port(tmp_path: Path, snapshot: osv.Snapshot) -> None:
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "osv.log"
    args = [sys.executable, "-m", "deployments.local.osv", "--zip", str(osv.DEFAULT_ZIP)]
    process = processes.start([*args, "--port", str(port)], log_path=log)
    try:
        processes.wait_until(
            lambda: (
                processes.still_running(process, log)
                and processes.http_ok(f"{url}/v1/vulns/{JINJA2_REDOS}")
            ),
            timeout=30,
            what=f"the OSV mirror on {url}",
        )
        assert f"snapshot {snapshot.date}" in log.read_text()
    finally:
        processes.stop(process)


# The real audit tool against the mirror.


def test_the_audit_catches_known_vulnerable_pins(tmp_path: Path, snapshot: osv.Snapshot) -> None:
    pins = ["jinja2==2.11.2", "urllib3==2.0.6", "pillow==12.2.0", "py==1.11.0"]
    code, text = audit.audit_offline([requirements(tmp_path, *pins)], osv.DEFAULT_ZIP)
    assert code != 0, text
    assert f"PyPI snapshot of {snapshot.date}" in text
    assert any(JINJA2_REDOS in row for row in finding_rows(text, "jinja2")), text
    assert finding_rows(text, "urllib3") and finding_rows(text, "pillow"), text
    assert not finding_rows(text, "py"), "py's only advisory is withdrawn"


def test_the_project_lock_passes(tmp_path: Path) -> None:
    exported = tmp_path / "lock.txt"
    uv = processes.REPO / ".tools" / "bin" / "uv"
    # As the Makefile's audit target exports it.
    export = ["export", "--frozen", "--format", "requirements-txt", "--no-hashes"]
    export += ["--no-emit-project", "-q", "-o", str(exported)]
    subprocess.run([str(uv), *export], cwd=processes.REPO, check=True)
    assert "prefect==" in exported.read_text()
    code, text = audit.audit_offline([exported], osv.DEFAULT_ZIP)
    assert code == 0, text
    assert "No known vulnerabilities found" in text


def test_the_audit_fails_when_the_service_cannot_be_reached(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{processes.free_port()}/v1/query"
    result = audit.run_pip_audit([requirements(tmp_path, "jinja2==3.1.6")], nobody)
    assert result.returncode != 0
