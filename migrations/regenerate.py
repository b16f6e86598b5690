"""Rewrite the initial migration from the models.

Until the first release the schema is one revision, ``0001``, generated from the
models against an empty SQLite database: ``python migrations/regenerate.py``.
After a release, switch to adding revisions (``alembic revision --autogenerate``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command

from config.cli import alembic_config
from workflows.pii import generate_key, keyring

VERSIONS = Path(__file__).resolve().parent / "versions"


def main() -> None:
    keyring.configure([generate_key()])
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.sqlite3"
        command.revision(
            alembic_config(url), message="initial schema", autogenerate=True, rev_id="0001"
        )


if __name__ == "__main__":
    main()
