"""`python -m tollway.mock_upstream [--host H] [--port P] [--api-key K]`."""

from __future__ import annotations

import argparse

from tollway.mock_upstream.server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tollway mock-upstream", description="OpenAI-compatible fake model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--api-key", default=None, help="require this bearer token (default: $MOCK_UPSTREAM_API_KEY)"
    )
    args = parser.parse_args(argv)
    run(host=args.host, port=args.port, api_key=args.api_key)


if __name__ == "__main__":
    main()
