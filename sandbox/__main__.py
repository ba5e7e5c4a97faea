"""Serve the sandbox for the demo: `python -m sandbox --host 127.0.0.1 --port 8765`."""

from __future__ import annotations

import argparse

from sandbox.app import PROVIDERS, serve
from sandbox.demo import demo_integrations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local fakes of the providers' usage APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = serve(args.host, args.port, verbose=args.verbose)
    url = f"http://{args.host}:{server.server_port}"
    print(f"Sandbox serving on {url}", flush=True)
    print(f"  providers: {', '.join(f'{url}/{slug}/' for slug in PROVIDERS)}", flush=True)
    for spec in demo_integrations(url):
        fields = " ".join(f"{k}={v}" for k, v in {**spec["settings"], **spec["credential"]}.items())
        print(f"  {spec['provider']}: {fields}", flush=True)
    print(f"  controls: {url}/_sandbox/faults, {url}/_sandbox/chaos, {url}/_sandbox/requests", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
