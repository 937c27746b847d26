"""One verified TLS context for all the Prefect API clients of the warm worker's flow runs.

Prefect 3.9 builds a new `SSLContext` for each API client it opens, parsing certifi's CA
bundle each time (about 40 ms of CPU on a 2-core machine), and a flow run opens about
nine (its run, its events, its logs, its pull step, ...): a third of a second at every
start, before any image. The forkserver of `deployments.worker` imports this module, so
the context is built once there and every run forked from it shares it. An `SSLContext`
is meant to be shared by many connections; Prefect's own PR #19106 proposes the same.

Only `create_default_context(cafile=...)` with nothing else is shared: that is the call
Prefect and httpx make (two per client: Prefect's own, and httpx's for the transport), and
neither changes the context afterwards (httpx sets the same ALPN protocols on it for every
connection). Any other call builds a new context as before.
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi

_new_default_context = ssl.create_default_context


@functools.cache
def _verified_context(cafile: str) -> ssl.SSLContext:
    return _new_default_context(cafile=cafile)


def create_default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> ssl.SSLContext:
    """`ssl.create_default_context`, shared when only a CA file is given."""
    if purpose == ssl.Purpose.SERVER_AUTH and cafile and capath is None and cadata is None:
        return _verified_context(str(cafile))
    return _new_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)


ssl.create_default_context = create_default_context
# Built in the forkserver, before any run is forked: the bundle Prefect names, and the one
# httpx uses for the transports Prefect gives its clients.
for _bundle in (certifi.where(), os.environ.get("SSL_CERT_FILE")):
    if _bundle:
        _verified_context(_bundle)
