"""Tip passphrases: words and digits a person can read aloud, about 63 bits.

Five words from BIP-39's list in the tipster's language (English or Spanish: 2,048 words
each, so the entropy is the same; each word unique in its first four letters, chosen to
be told apart when spoken) and three digits. A Spanish word is accepted typed without
its accent ("abaco" for "ábaco"): the Spanish list stays unique without them.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from functools import cache

from mnemonic import Mnemonic

from workflows.pii import lookup_hash

HASH_PREFIX = "hmac1:"


# BIP-39 wordlists shipped with the ``mnemonic`` package, by tipster language.
WORDLISTS = {"en": "english", "es": "spanish"}


@cache
def _words(language: str = "en") -> list[str]:
    # BIP-39 ships its lists decomposed (NFKD: "n" + a combining tilde). Composed (NFC)
    # each accented letter is one Latin-1 character, so a Spanish passphrase can travel
    # in the X-Tip-Passphrase header (HTTP header values are Latin-1) and reads the same.
    return [unicodedata.normalize("NFC", w) for w in Mnemonic(
        WORDLISTS.get(language, "english")).wordlist]


def new_passphrase(words: int = 5, language: str = "en") -> str:
    """A fresh passphrase such as ``orbit-maple-tiger-salad-canoe-482`` (or, in
    Spanish, ``ábaco-lienzo-rumbo-tierra-mojar-482``)."""
    chosen = [secrets.choice(_words(language)) for _ in range(words)]
    return "-".join([*chosen, f"{secrets.randbelow(1000):03d}"])


def _without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalise(passphrase: str) -> str:
    """Forgive case, accents, spaces and stray separators, as a tipster types it back."""
    plain = _without_accents(passphrase.strip().lower())
    parts = [p for p in plain.replace(" ", "-").split("-") if p]
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
