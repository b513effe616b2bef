"""``make demo``: start the dev server on the embedded model, run the quickstart, stop it."""

from __future__ import annotations

import argparse
import os
import runpy
from pathlib import Path

from steerlm.server.process import dev_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5555)
    args = parser.parse_args()
    print(f"Starting the dev server on port {args.port} (SmolLM2-135M on the CPU)...")
    with dev_server("--log-level", "WARNING", port=args.port) as url:
        os.environ["STEERLM_BASE_URL"] = url
        print(f"Server ready at {url}\n")
        runpy.run_path(str(Path(__file__).with_name("quickstart.py")), run_name="__main__")
    print("\nServer stopped.")


if __name__ == "__main__":
    main()
