"""``make demo``: start the dev server on the embedded model, run the quickstart, stop it.

If the server dies (for instance an illegal instruction from a llama.cpp built for another
CPU), the demo says so, with the server's exit signal, its last output and the fix.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

from steerlm.server.process import DevServerError, dev_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5555)
    args = parser.parse_args()
    print(f"Starting the dev server on port {args.port} (SmolLM2-135M on the CPU)...", flush=True)
    try:
        with dev_server("--log-level", "WARNING", port=args.port) as server:
            os.environ["STEERLM_BASE_URL"] = server.url
            print(f"Server ready at {server.url}\n", flush=True)
            runpy.run_path(str(Path(__file__).with_name("quickstart.py")), run_name="__main__")
    except DevServerError as exc:
        sys.exit(f"\nThe demo stopped because the dev server failed.\n{exc}")
    print("\nServer stopped.")


if __name__ == "__main__":
    main()
