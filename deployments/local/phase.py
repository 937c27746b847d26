"""Progress you can follow: a line when a phase of `make up` starts, one when it ends.

`phase(name)` wraps a step of the local stack (a service, provisioning, the samples);
`python -m deployments.local.phase NAME -- COMMAND...` wraps a command of the Makefile
(install, compile). The standard library only: the Makefile runs it before any
environment exists.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

Say = Callable[[str], None]


def say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def phase(name: str, out: Say | None = say) -> Iterator[None]:
    """`==> name ...` now, `<== name: done in 1.2 s` (or `failed after`) at the end."""
    if out is None:  # quiet, as in the tests' own stacks
        yield
        return
    started = time.monotonic()
    out(f"==> {name} ...")
    try:
        yield
    except BaseException:
        out(f"<== {name}: failed after {time.monotonic() - started:.1f} s")
        raise
    out(f"<== {name}: done in {time.monotonic() - started:.1f} s")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m deployments.local.phase NAME -- COMMAND...", file=sys.stderr)
        return 2
    name, command = argv[0], argv[2:]
    returncode = 0
    with contextlib.suppress(subprocess.CalledProcessError), phase(name):
        returncode = subprocess.run(command, check=False).returncode
        if returncode != 0:
            raise subprocess.CalledProcessError(returncode, command)
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
