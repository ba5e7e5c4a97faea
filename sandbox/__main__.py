"""Serve the sandbox for the demo: `python -m sandbox --host 127.0.0.1 --port 8765`."""

from __future__ import annotations

import argparse

from sandbox import openai
from sandbox.app import PROVIDERS, serve


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
    print(f"  openai: base_url={url}/openai/v1 api_key={openai.ADMIN_KEY}", flush=True)
    print(f"  controls: {url}/_sandbox/faults, {url}/_sandbox/requests", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
