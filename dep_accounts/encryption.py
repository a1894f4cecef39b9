"""Secrets at rest: Fernet under the keys in settings.SECRETS_ENCRYPTION_KEYS, newest first."""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS))


def secret_encrypt(plaintext: bytes) -> bytes:
    return _current().encrypt(plaintext)


def secret_decrypt(ciphertext: bytes) -> bytes:
    try:
        return _current().decrypt(bytes(ciphertext))
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted: SECRETS_ENCRYPTION_KEYS lacks the key it was "
            "encrypted with."
        ) from exc


def secret_reencrypt(ciphertext: bytes) -> bytes:
    """The same secret, encrypted under the newest key."""
    try:
        return _current().rotate(bytes(ciphertext))
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with any key in SECRETS_ENCRYPTION_KEYS."
        ) from exc
