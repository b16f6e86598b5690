"""Personal data at rest: field encryption with rotatable keys and keyed look-up hashes.

Fernet (AES-128-CBC + HMAC, random IV per value) under ``MultiFernet``: the first key
encrypts, every key decrypts, so keys rotate without downtime. Phone numbers are found
through an HMAC, never through plaintext (ENGINEERING.md, Flask security).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

PREFIX = "enc1:"


class PiiKeyError(RuntimeError):
    """Encrypted data cannot be read with the configured keys."""


class _KeyRing:
    """The process's keys; set once by ``configure`` in the app factory or worker."""

    def __init__(self) -> None:
        self._fernet: MultiFernet | None = None
        self._newest: Fernet | None = None
        self._hash_key: bytes = b""

    def configure(self, keys: tuple[str, ...] | list[str], lookup_key: str | None = None) -> None:
        """Set the keys: the first encrypts, all decrypt; look-ups use ``lookup_key``."""
        if not keys:
            raise PiiKeyError("no PII encryption key configured")
        fernets = []
        for key in keys:
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                raise PiiKeyError(
                    "PII_ENCRYPTION_KEYS holds a key that is not a Fernet key"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        # Look-up hashes cannot be re-computed for rows that keep only the hash (opt-outs),
        # so their key must outlive encryption keys: PII_LOOKUP_KEY when set, else the
        # *last* encryption key, which stays put while new keys are prepended.
        source = lookup_key or keys[-1]
        self._hash_key = hashlib.sha256(b"hotline-lookup:" + source.encode()).digest()

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            raise PiiKeyError("PII keys are not configured")
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise PiiKeyError("stored value is not encrypted")
        try:
            return self.fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise PiiKeyError("no configured key decrypts this value") from None

    def is_current(self, stored: str) -> bool:
        """True when the newest key alone decrypts the value (nothing to rotate)."""
        if self._newest is None:
            raise PiiKeyError("PII keys are not configured")
        try:
            self._newest.decrypt(stored[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, stored: str) -> str:
        """Re-encrypt a stored value under the newest key (plaintext left behind is encrypted)."""
        if not stored.startswith(PREFIX):
            return self.encrypt(stored)
        try:
            token = self.fernet.rotate(stored[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            raise PiiKeyError("no configured key decrypts this value") from None
        return PREFIX + token.decode("ascii")

    def lookup_hash(self, value: str) -> str:
        if not self._hash_key:
            raise PiiKeyError("PII keys are not configured")
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


keyring = _KeyRing()


def generate_key() -> str:
    """A new key for PII_ENCRYPTION_KEYS."""
    return Fernet.generate_key().decode("ascii")


def lookup_hash(value: str) -> str:
    """Keyed hash for finding a phone number or e-mail without storing it in clear."""
    return keyring.lookup_hash(value)


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted; reads give plaintext back.

    ``legacy_plaintext=True`` for a column that became encrypted: rows written before
    still read (as they are) until ``pii rotate`` encrypts them.
    """

    impl = Text
    cache_ok = True

    def __init__(self, *args: Any, legacy_plaintext: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.legacy_plaintext = legacy_plaintext

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        if value is None:
            return None
        return keyring.encrypt(value)

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        if value is None:
            return None
        if self.legacy_plaintext and not value.startswith(PREFIX):
            return value
        return keyring.decrypt(value)


class EncryptedJSON(EncryptedText):
    """A JSON value stored encrypted (issue 11, item 3: JSON columns held what people typed,
    such as the SMS answers with the texter's location, in plain text).

    An ``EncryptedText`` underneath, so key rotation and the retention purge treat it as
    any other encrypted column. Plain JSON written before the column became encrypted
    still reads until ``pii rotate`` encrypts it.
    """

    cache_ok = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("legacy_plaintext", True)
        super().__init__(*args, **kwargs)

    def process_bind_param(self, value: Any, dialect: object) -> str | None:  # type: ignore[override]
        if value is None:
            return None
        return keyring.encrypt(json.dumps(value, separators=(",", ":"), default=str))

    def process_result_value(self, value: str | None, dialect: object) -> Any:
        text = super().process_result_value(value, dialect)
        return None if text is None else json.loads(text)
