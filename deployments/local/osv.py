"""A loopback OSV API (https://google.github.io/osv.dev/api/) served from a PyPI snapshot zip.

PyPI and api.osv.dev cannot be reached from the machines that build this project, so
`make audit` points pip-audit at this instead. It answers `POST /v1/query`,
`POST /v1/querybatch` and `GET /v1/vulns/{id}` for the PyPI ecosystem only.

    python -m deployments.local.osv --zip ../shared/advisories/pypi-osv.zip --port 8765
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ZIP = REPO.parent / "shared" / "advisories" / "pypi-osv.zip"
ECOSYSTEM = "PyPI"
MAX_BATCH = 1000  # api.osv.dev's own limit per querybatch

Record = dict[str, Any]


def normalise(name: str) -> str:
    """PEP 503: `Jinja2`, `jinja_2` and `jinja.2` name the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """The OSV schema's evaluation of one ECOSYSTEM range's events, sorted by version."""
    bounds: list[tuple[str, Version | None]] = []
    for event in events:
        for kind, text in event.items():
            if kind == "introduced" and text == "0":
                bounds.append((kind, None))
                continue
            bound = parse_version(text)
            if bound is None:
                # A bound we cannot compare (e.g. "2.6.0-NA") might hide a finding:
                # fail closed and count every version as inside the range.
                return True
            bounds.append((kind, bound))
    bounds.sort(key=lambda b: (0, Version("0")) if b[1] is None else (1, b[1]))
    affected = False
    for kind, bound in bounds:
        if kind == "introduced":
            affected = affected or bound is None or version >= bound
        elif bound is not None and ends_before(kind, bound, version):
            affected = False
    return affected


def ends_before(kind: str, bound: Version, version: Version) -> bool:
    # "limit" marks where a GIT range's commit walk stops; it says nothing about versions.
    return (kind == "fixed" and version >= bound) or (kind == "last_affected" and version > bound)


def affects(affected: Record, version: str) -> bool:
    """True if `version` is in the entry's `versions` list or in one of its ECOSYSTEM ranges."""
    parsed = Version(version)
    if any(parse_version(listed) == parsed for listed in affected.get("versions", [])):
        return True
    return any(
        in_range(parsed, r.get("events", []))
        for r in affected.get("ranges", [])
        if r.get("type") == "ECOSYSTEM"
    )


def names_package(affected: Record, name: str) -> bool:
    package = affected.get("package", {})
    return package.get("ecosystem") == ECOSYSTEM and normalise(package.get("name", "")) == name


def snapshot_date(readme: Path, records: list[Record]) -> str:
    """The day the snapshot was taken: as its README states it, else from the records."""
    if readme.exists():
        stated = re.search(r"current\s+to\s+(\d{4}-\d{2}-\d{2})", readme.read_text())
        if stated:
            return stated.group(1)
    # Some records carry a `modified` in the future (a typo upstream), so those cannot
    # say when the snapshot was taken.
    today = dt.datetime.now(dt.UTC).date().isoformat()
    days = [r["modified"][:10] for r in records if r.get("modified")]
    return max((d for d in days if d <= today), default="unknown")


@dataclass(frozen=True)
class Snapshot:
    records: dict[str, Record] = field(repr=False)
    by_package: dict[str, list[Record]] = field(repr=False)
    date: str

    @classmethod
    def load(cls, zip_path: Path) -> Snapshot:
        with zipfile.ZipFile(zip_path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".json")]
            records = [json.loads(archive.read(n)) for n in names]
        date = snapshot_date(zip_path.with_name("README.md"), records)
        return cls.of(records, date)

    @classmethod
    def of(cls, records: list[Record], date: str) -> Snapshot:
        by_package: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            names = {
                normalise(a["package"]["name"])
                for a in record.get("affected", [])
                if a.get("package", {}).get("ecosystem") == ECOSYSTEM
            }
            for name in names:
                by_package[name].append(record)
        return cls({r["id"]: r for r in records}, dict(by_package), date)

    def query(self, name: str, version: str | None) -> list[Record]:
        """Records that affect `name` at `version` (every version when None), as OSV does."""
        name = normalise(name)
        return [
            record
            for record in self.by_package.get(name, [])
            # api.osv.dev leaves withdrawn records out of query results; /v1/vulns still has them
            if not record.get("withdrawn")
            and any(
                names_package(a, name) and (version is None or affects(a, version))
                for a in record.get("affected", [])
            )
        ]


class BadRequest(ValueError):
    pass


def answer_query(snapshot: Snapshot, query: Any) -> list[Record]:
    if not isinstance(query, dict) or not isinstance(query.get("package"), dict):
        raise BadRequest("a query needs a package {name, ecosystem}")
    package = query["package"]
    if "commit" in query or "purl" in package:
        raise BadRequest("this mirror answers package name + version queries only")
    if package.get("ecosystem") != ECOSYSTEM or not isinstance(package.get("name"), str):
        # Answering "nothing found" for an ecosystem we do not hold would be a false all-clear.
        raise BadRequest(f"this mirror holds the {ECOSYSTEM} ecosystem only")
    version = query.get("version")
    if version is not None and (not isinstance(version, str) or parse_version(version) is None):
        # A version we cannot compare cannot be cleared either.
        raise BadRequest(f"not a PEP 440 version: {version!r}")
    return snapshot.query(package["name"], version)


class Handler(BaseHTTPRequestHandler):
    # Keep-alive: pip-audit sends one request per package over one session. Without
    # TCP_NODELAY, Nagle plus the client's delayed ACK cost 40 ms per request.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: OsvServer

    def do_GET(self) -> None:
        prefix = "/v1/vulns/"
        record = None
        if self.path.startswith(prefix):
            record = self.server.snapshot.records.get(self.path.removeprefix(prefix))
        if record is None:
            self.reply(HTTPStatus.NOT_FOUND, {"code": 5, "message": "Bug not found."})
        else:
            self.reply(HTTPStatus.OK, record)

    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/v1/query":
                vulns = answer_query(self.server.snapshot, body)
                self.reply(HTTPStatus.OK, {"vulns": vulns} if vulns else {})
            elif self.path == "/v1/querybatch":
                self.reply(HTTPStatus.OK, {"results": self.batch(body)})
            else:
                self.reply(HTTPStatus.NOT_FOUND, {"code": 5, "message": "Not found."})
        except ValueError as error:  # BadRequest, bad JSON, bad Content-Length
            self.reply(HTTPStatus.BAD_REQUEST, {"code": 3, "message": str(error)})

    def batch(self, body: Any) -> list[dict[str, Any]]:
        queries = body.get("queries") if isinstance(body, dict) else None
        if not isinstance(queries, list) or len(queries) > MAX_BATCH:
            raise BadRequest(f"querybatch needs a list of at most {MAX_BATCH} queries")
        results = []
        for query in queries:
            vulns = [
                {"id": r["id"], "modified": r["modified"]}
                for r in answer_query(self.server.snapshot, query)
            ]
            results.append({"vulns": vulns} if vulns else {})
        return results

    def reply(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class OsvServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, snapshot: Snapshot, port: int = 0, *, verbose: bool = False) -> None:
        self.snapshot = snapshot
        self.verbose = verbose
        super().__init__(("127.0.0.1", port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serve(snapshot: Snapshot, port: int = 0) -> Iterator[OsvServer]:
    """Serve `snapshot` on 127.0.0.1 (a free port by default) in a thread while in the block.

    The socket is listening before this yields, so clients need not wait for it.
    """
    server = OsvServer(snapshot, port)
    thread = threading.Thread(target=server.serve_forever, name="osv-mirror", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="OSV records, one per file")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    args = parser.parse_args(argv)
    snapshot = Snapshot.load(args.zip)
    with OsvServer(snapshot, args.port, verbose=True) as server:
        print(
            f"OSV mirror of {len(snapshot.records)} records (snapshot {snapshot.date}) "
            f"on {server.url}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
