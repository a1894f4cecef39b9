"""The rows of a Bulk renewal, whatever kind of file each is: the preview's, the staged
ones that are confirmed, and what confirming each did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dep_accounts.apple.file_kinds import FileKind
from dep_accounts.models import DEPAccount
from dep_accounts.services.verdict import Refusal


@dataclass
class BulkRenewalRow:
    """One uploaded file: what it renews, or why it will not be applied."""

    file_name: str
    kind: FileKind = FileKind.SERVER_TOKEN
    account: DEPAccount | None = None
    # What the file renews, whatever its kind: its name, page and id (the account's for DEP).
    target_name: str = ""
    target_url: str = ""
    target_id: int | None = None
    server_name: str = ""
    expires_at: datetime | None = None
    apple_id: str = ""
    # The Apple ID of the current credential when this one was made by another.
    previous_apple_id: str = ""
    apple_id_label: str = "The Apple ID that manages this server in ABM has changed"
    # The other MDM that manages a content token's location: taking it over is confirmed.
    other_mdm: str = ""
    problem: str = ""
    # Where the admin can do what bulk renewal does not (replace a push topic).
    problem_url: str = ""
    reason: str = ""
    refusal: Refusal | None = None
    token_file: bytes = field(default=b"", repr=False)

    @property
    def applies(self) -> bool:
        return not self.problem

    @property
    def apple_id_changed(self) -> bool:
        return bool(self.previous_apple_id)

    @property
    def kind_name(self) -> str:
        return KIND_LABELS.get(self.kind, "Not a file bulk renewal takes")


KIND_LABELS = {
    FileKind.SERVER_TOKEN: "DEP server token",
    FileKind.CONTENT_TOKEN: "Apps and Books content token",
    FileKind.PUSH_CERTIFICATE: "APNs push certificate",
}


@dataclass(frozen=True)
class StagedRenewal:
    """A row of a confirmed preview, as `bulk_renewal_apply` takes it."""

    account_id: int | None
    file_name: str
    token_file: bytes = field(repr=False)
    apple_id_change_confirmed: bool = False
    kind: str = FileKind.SERVER_TOKEN
    target_id: int | None = None
    apple_id: str = ""
    take_over_confirmed: bool = False


@dataclass(frozen=True)
class BulkRenewalResult:
    """What confirming one row did: renewed until `expires_at`, or the `problem` why not."""

    file_name: str
    kind: str
    target_name: str
    expires_at: datetime | None = None
    problem: str = ""

    @property
    def renewed(self) -> bool:
        return not self.problem


def refused(row: BulkRenewalRow, refusal: Refusal) -> BulkRenewalRow:
    """`row`, refused: it says why and is not applied."""
    row.refusal, row.problem, row.reason = refusal, refusal.message, refusal.code
    return row
