"""Regenerate ``requirements.lock``: the runtime part of requirements.txt, every
transitive dependency pinned, each with its hashes (``make lock``).

Production installs only this file (``pip install --require-hashes -r
requirements.lock``): no test tools, and a tampered or substituted wheel fails its hash.
requirements.txt stays what the README's commands install (runtime + tests); its
``# Runtime`` section, up to ``# Tests and tools``, is the source of the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def runtime_requirements(text: str) -> list[str]:
    """The lines of the ``# Runtime`` section of requirements.txt."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip().lower().startswith("# runtime"):
            inside = True
            continue
        if line.strip().lower().startswith("# tests"):
            break
        if inside and line.split("#", 1)[0].strip():
            lines.append(line.split("#", 1)[0].strip())
    return lines


def main() -> int:
    runtime = runtime_requirements((ROOT / "requirements.txt").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "runtime.in"
        source.write_text("\n".join(runtime) + "\n")
        code = subprocess.call(
            [
                sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes",
                "--allow-unsafe", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links",
                "--output-file", str(ROOT / "requirements.lock"), str(source),
            ],
            cwd=ROOT,
            env={**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"},
        )
        lock = ROOT / "requirements.lock"
        if code == 0:  # name the real source, not the temporary file
            lock.write_text(lock.read_text().replace(f"-r {source}", "requirements.txt (Runtime)"))
        return code


if __name__ == "__main__":
    sys.exit(main())
