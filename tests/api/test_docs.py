"""/docs and /redoc work offline: every script, style and icon they load is served by the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.api.conftest import serve


class AssetLinks(HTMLParser):
    """The URLs a browser fetches to render the page: scripts, styles, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    # The docs read no AWS resource: the app alone, over real HTTP.
    with serve() as url:
        yield url


@pytest.mark.parametrize(("page", "expected"), [("/docs", 3), ("/redoc", 2)])
def test_the_docs_page_loads_only_what_the_api_serves(api_url: str, page: str, expected: int):
    response = httpx.get(api_url + page, timeout=10)
    assert response.status_code == 200
    links = AssetLinks()
    links.feed(response.text)
    assert len(links.urls) >= expected, links.urls  # a script, a style (Swagger) and an icon

    for url in links.urls:
        absolute = urljoin(api_url + page, url)
        assert urlsplit(absolute).netloc == urlsplit(api_url).netloc, f"{url} is off-host"
        asset = httpx.get(absolute, timeout=10)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url  # the real file, not an error page

    # Nor anything in the page's own script: no CDN, no web fonts.
    off_host = re.findall(r"https?://[^\s\"')]+", response.text)
    assert off_host == [], off_host


@pytest.mark.parametrize(
    ("page", "reference"),
    [("/docs", "url: '/openapi.json'"), ("/redoc", 'spec-url="/openapi.json"')],
)
def test_the_docs_read_the_apis_own_document(api_url: str, page: str, reference: str) -> None:
    assert reference in httpx.get(api_url + page, timeout=10).text
    assert httpx.get(f"{api_url}/openapi.json", timeout=10).json()["paths"]
