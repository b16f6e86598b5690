"""Make sure Debian's Chromium is there for the browser tests (no browser download).

With CI=true a missing Chromium that cannot be installed is an error; locally the
browser tests skip with a message instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        return 0
    ci = os.environ.get("CI", "").lower() == "true"
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("installing Debian's chromium for the browser tests…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
        if done.returncode == 0 and os.path.exists(CHROMIUM):
            return 0
    message = "Chromium is not installed and could not be installed: browser tests will skip"
    if ci:
        print(f"error: {message} (CI=true requires them)", file=sys.stderr)
        return 1
    print(f"warning: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
