"""Tip passphrases: words and digits a person can read aloud, about 63 bits.

Five words from BIP-39's English list (2,048 words, each unique in its first four
letters, chosen to be told apart when spoken) and three digits.
"""

from __future__ import annotations

import secrets
from functools import cache

from mnemonic import Mnemonic


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
