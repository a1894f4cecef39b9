"""Names admins type, kept to what one line of text can hold.

A name travels into email subjects (a header: one line break there makes Django refuse the whole
email), webhook payloads, logs and the console. So a name an admin types is refused if it holds
a control character or a line or paragraph separator. The names Apple sends are not ours to
refuse: every email subject is flattened to one line where it is queued (outbox.subject_line).
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Cc: control characters (C0, DEL, C1: tab, line feed, carriage return, escape...);
# Zl/Zp: the Unicode line and paragraph separators, which mail clients break lines at too.
NOT_IN_A_NAME = {"Cc", "Zl", "Zp"}


def _is_line_breaking(character: str) -> bool:
    return unicodedata.category(character) in NOT_IN_A_NAME


def name_validate(value: str) -> None:
    """The validator of every name an admin types: forms, the API and the commands."""
    if any(_is_line_breaking(c) for c in value):
        raise ValidationError(
            "A name is one line of text: take out the line breaks, tabs and other control "
            "characters.",
            code="control_characters",
        )
