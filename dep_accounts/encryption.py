"""Secrets at rest: Fernet under the keys in settings.SECRETS_ENCRYPTION_KEYS, newest first.

Every encrypted column is a BinaryField named `*_encrypted`: `encrypted_fields()` finds them all,
so key rotation cannot miss one a new model adds.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models
from django.views.decorators.debug import sensitive_variables

ENCRYPTED_SUFFIX = "_encrypted"


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS))


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) of the portal that holds a secret encrypted under these keys."""
    return [
        (model, field.name)
        for model in apps.get_app_config("dep_accounts").get_models()
        for field in model._meta.get_fields()
        if field.name.endswith(ENCRYPTED_SUFFIX)
    ]


@sensitive_variables("plaintext")
def secret_encrypt(plaintext: bytes) -> bytes:
    return _current().encrypt(plaintext)


def secret_decrypt(ciphertext: bytes | memoryview) -> bytes:
    try:
        return _current().decrypt(bytes(ciphertext))
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted: SECRETS_ENCRYPTION_KEYS lacks the key it was "
            "encrypted with."
        ) from exc


def secret_reencrypt(ciphertext: bytes | memoryview) -> bytes:
    """The same secret, encrypted under the newest key."""
    try:
        return _current().rotate(bytes(ciphertext))
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with any key in SECRETS_ENCRYPTION_KEYS."
        ) from exc
