"""What-if builds of the service, for the figures in BENCHMARKS.md only.

``fast_passphrase_app``: the real app with the tip passphrase hashed by a keyed
HMAC-SHA256 (``workflows.pii.lookup_hash``) instead of argon2-cffi's default argon2id
(RFC 9106 low-memory: t=3, 64 MiB, p=4: about 140 ms wall and 220 ms CPU per tip on
the bench machine). It shows what intake reaches once the passphrase hash is cheap;
the decision is the owners', not the benchmark's. Served only by the bench.
"""

from __future__ import annotations

import intake.services
from config.app import create_app
from workflows.pii import lookup_hash


def _keyed_hash(passphrase: str) -> str:
    # A passphrase is ~63 random bits, so (like the 256-bit API tokens) it needs no
    # stretching; the key lives outside the database.
    return "hmac-sha256$" + lookup_hash(passphrase)


intake.services.hash_secret = _keyed_hash  # type: ignore[attr-defined]

fast_passphrase_app = create_app()
