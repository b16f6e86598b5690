"""Tip passphrases: words and digits a person can read aloud, about 63 bits.

Five words from BIP-39's English list (2,048 words, each unique in its first four
letters, chosen to be told apart when spoken) and three digits.
"""

from __future__ import annotations

import hmac
import secrets
from functools import cache

from mnemonic import Mnemonic

from workflows.pii import lookup_hash

HASH_PREFIX = "hmac1:"


@cache
def _words() -> list[str]:
    return list(Mnemonic("english").wordlist)


def new_passphrase(words: int = 5) -> str:
    """A fresh passphrase such as ``orbit-maple-tiger-salad-canoe-482``."""
    chosen = [secrets.choice(_words()) for _ in range(words)]
    return "-".join([*chosen, f"{secrets.randbelow(1000):03d}"])


def normalise(passphrase: str) -> str:
    """Forgive case, spaces and stray separators, as a tipster types it back."""
    parts = [p for p in passphrase.strip().lower().replace(" ", "-").split("-") if p]
    return "-".join(parts)


def hash_passphrase(passphrase: str) -> str:
    """Keyed HMAC-SHA256 of a generated passphrase, for storage.

    A passphrase is ~63 random bits chosen by us, not a password a person picked, so it
    needs no key stretching (as API tokens): argon2id here cost 220 ms CPU per tip and
    capped intake at ~9 tips/s (BENCHMARKS.md). Guessing online is throttled per
    reference; offline, the key is not in the database.
    """
    return HASH_PREFIX + lookup_hash("tip-passphrase:" + normalise(passphrase))


def verify_passphrase(stored: str | None, passphrase: str) -> bool:
    """Constant-time check; an unknown reference costs the same HMAC as a known one."""
    candidate = hash_passphrase(passphrase)
    return hmac.compare_digest(stored or "", candidate) and stored is not None
