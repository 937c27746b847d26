"""Container health check: exit 0 when `URL` answers 2xx within 4 s, else 1.

`python -m deployments.aws.healthcheck http://127.0.0.1:8000/healthz`. The image has no
curl; the standard library is enough, and this is what the Dockerfile's HEALTHCHECK and
the ECS services' checks run.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def healthy(url: str, timeout: float = 4.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m deployments.aws.healthcheck URL", file=sys.stderr)
        return 2
    return 0 if healthy(args[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
