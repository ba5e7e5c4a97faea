"""Serve the sandbox for the demo: `python -m sandbox --host 127.0.0.1 --port 8765`.

The port defaults to DEMO_SANDBOX_PORT (as `make demo` does), else 8765. When a sandbox already
answers on that port (the demo's, say), this prints its URLs and exits instead of failing to
bind or starting a second one somewhere else.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

from sandbox.app import PROVIDERS, serve
from sandbox.demo import demo_integrations


def _describe(url: str) -> None:
    print(f"  providers: {', '.join(f'{url}/{slug}/' for slug in PROVIDERS)}", flush=True)
    for spec in demo_integrations(url):
        fields = " ".join(f"{k}={v}" for k, v in {**spec["settings"], **spec["credential"]}.items())
        print(f"  {spec['provider']}: {fields}", flush=True)
    print(f"  controls: {url}/_sandbox/faults, {url}/_sandbox/chaos, {url}/_sandbox/requests", flush=True)


def _already_serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_sandbox/requests", timeout=1) as answer:  # our own loopback URL
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local fakes of the providers' usage APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_SANDBOX_PORT") or 8765))
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.port and _already_serving(f"http://{args.host}:{args.port}"):
        url = f"http://{args.host}:{args.port}"
        print(f"A sandbox is already serving on {url} (the demo's?): not starting another.", flush=True)
        _describe(url)
        return
    try:
        server = serve(args.host, args.port, verbose=args.verbose)
    except OSError as error:
        sys.exit(f"Cannot serve the sandbox on {args.host}:{args.port}: {error.strerror or error}")
    url = f"http://{args.host}:{server.server_port}"
    print(f"Sandbox serving on {url}", flush=True)
    _describe(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
