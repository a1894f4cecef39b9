"""The forms of Apple's other yearly credentials: content tokens and the push certificate."""

from __future__ import annotations

from typing import Any

from django import forms

from dep_accounts.forms import EmailListField
from dep_accounts.models import ContentToken
from dep_accounts.services.content_tokens.verdict import TAKE_OVER_LABEL
from dep_accounts.services.push.verdict import APPLE_ID_CHANGED_LABEL as PUSH_APPLE_ID_CHANGED_LABEL
from dep_accounts.services.push.verdict import REPLACE_WORD


class ContentTokenForm(forms.Form):
    """Add or Edit Content Token: a .vpptoken (required when adding) and who downloaded it."""

    token_file = forms.FileField(
        label="Upload Token",
        required=False,
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": ".vpptoken", "class": "file-input"}),
    )
    take_over = forms.BooleanField(label=TAKE_OVER_LABEL, required=False)
    apple_id = forms.EmailField(
        label="Apple ID",
        required=False,
        max_length=254,
        help_text="The Apple Account that downloaded the token in Apple Business Manager, so "
        "that reminders say who can renew it. Apple does not tell.",
    )
    notification_emails = EmailListField(
        label="Notification contacts",
        required=False,
        help_text="Who is reminded before the content token expires, besides the admins.",
    )

    def __init__(self, *args, content_token: ContentToken | None = None, **kwargs) -> None:
        self.adding = content_token is None
        if content_token is not None:
            kwargs.setdefault(
                "initial",
                {
                    "apple_id": content_token.apple_id,
                    "notification_emails": "\n".join(content_token.notification_email_list),
                },
            )
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # Without a file, a ticked take-over confirms the file kept from the refusal.
        waiting = cleaned.get("take_over")
        if self.adding and not cleaned.get("token_file") and not waiting:
            self.add_error("token_file", "Choose the .vpptoken file you downloaded from ABM.")
        return cleaned


class PushCertificateForm(forms.Form):
    """Edit APNs Certificate: the issued .pem, the Apple ID it was made with, confirmations."""

    certificate_file = forms.FileField(
        label="Upload Certificate",
        required=False,
        allow_empty_file=True,
        widget=forms.FileInput(attrs={"accept": ".pem,.cer,.crt", "class": "file-input"}),
    )
    apple_id = forms.EmailField(
        label="Apple ID used at the Apple Push Certificates Portal",
        required=False,
        max_length=254,
        help_text="Needed for the first certificate; leave empty to keep the one recorded.",
    )
    apple_id_changed = forms.BooleanField(label=PUSH_APPLE_ID_CHANGED_LABEL, required=False)
    topic_confirmation = forms.CharField(
        label="Replace the topic on purpose",
        required=False,
        max_length=200,
        help_text=f"Only to replace the push topic: type {REPLACE_WORD} or the new topic. Every "
        "enrolled device must then enroll again.",
    )
