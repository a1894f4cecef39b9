"""Token files kept in the session between two steps: a preview and its confirm, or a refusal
and the confirmation that lifts it. Encrypted like every other secret: the session store is a
database table."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.sessions.backends.base import SessionBase
from django.views.decorators.debug import sensitive_variables

from dep_accounts.encryption import SecretDecryptionError, secret_decrypt, secret_encrypt
from dep_accounts.services.intake import TokenFile


@dataclass(frozen=True)
class StagedFile:
    """A checked token file, the account it is for, and its row on a Bulk renewal preview."""

    file_name: str
    content: bytes = field(repr=False)
    account_id: int | None = None
    row: int = 0
    # On a Bulk renewal preview: the file's kind, the content token it renews, and the Apple ID
    # named for a push certificate.
    kind: str = ""
    target_id: int | None = None
    apple_id: str = ""

    def token_file(self) -> TokenFile:
        return TokenFile(self.file_name, self.content)


@sensitive_variables()
def files_stage(session: SessionBase, key: str, files: list[StagedFile]) -> None:
    session[key] = [
        {
            "file_name": staged.file_name[:255],
            "token_file": secret_encrypt(staged.content).decode("ascii"),
            "account_id": staged.account_id,
            "row": staged.row,
            "kind": staged.kind,
            "target_id": staged.target_id,
            "apple_id": staged.apple_id,
        }
        for staged in files
    ]


@sensitive_variables()
def files_unstage(session: SessionBase, key: str) -> list[StagedFile]:
    """The files staged under `key`, taken out of the session; none if they cannot be read."""
    try:
        return [
            StagedFile(
                file_name=staged["file_name"],
                content=secret_decrypt(staged["token_file"].encode("ascii")),
                account_id=staged["account_id"],
                row=staged["row"],
                kind=staged.get("kind", ""),
                target_id=staged.get("target_id"),
                apple_id=staged.get("apple_id", ""),
            )
            for staged in session.pop(key, None) or []
        ]
    except SecretDecryptionError:
        # Staged under an encryption key that has been rotated away since: upload them again.
        return []


def staged_names(session: SessionBase, key: str) -> list[str]:
    """The names of the files staged under `key`, without reading their content."""
    return [staged["file_name"] for staged in session.get(key) or []]


def token_key(account_id: int) -> str:
    """Where the one token file staged for an account's Add or Edit page waits."""
    return f"dep_accounts.staged_token.{account_id}"
