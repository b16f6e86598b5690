"""Jobs that only tests enqueue, importable by a real worker process (its cwd is the root)."""

from __future__ import annotations

import time
from pathlib import Path


def hold(directory: str, seconds: float) -> str:
    """A long maintenance job: marks ``started``, waits for ``release`` (or ``seconds``),
    then marks ``done``."""
    folder = Path(directory)
    (folder / "started").touch()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (folder / "release").exists():
        time.sleep(0.1)
    (folder / "done").touch()
    return "held"
