"""Forms of the admin console. They only validate input; the views call the services.

The forms of content tokens and of the push certificate are in forms/credentials.py."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from dep_accounts.apple.apns import PUSH_CERTIFICATE_MAX_BYTES as PUSH_MAX
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice, EnrollmentProfile
from dep_accounts.plain_text import name_validate
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.verdict import APPLE_ID_CHANGED_LABEL

LICENCE_MAX_BYTES = 64 * 1024
# Apple's profile status of a device: https://developer.apple.com/documentation/devicemanagement/device
PROFILE_STATUSES = [
    ("", "Any profile status"),
    ("empty", "No profile"),
    ("assigned", "Assigned"),
    ("pushed", "Pushed"),
    ("removed", "Removed"),
]


class TokenFileInput(forms.FileInput):
    """A file input for a server token; the template draws the "Choose file" button around it."""

    def __init__(self) -> None:
        super().__init__(attrs={"accept": ".p7m", "class": "file-input"})


class TokenUploadForm(forms.Form):
    """A server token file is present; its size and content are the intake's to judge."""

    token_file = forms.FileField(
        label="Server token (.p7m)",
        widget=TokenFileInput(),
        allow_empty_file=True,
        error_messages={"required": "Choose the .p7m file you downloaded from ABM."},
    )


class TokenFilesInput(forms.FileInput):
    allow_multiple_selected = True

    def __init__(self) -> None:
        super().__init__(attrs={"accept": ".p7m,.vpptoken,.pem", "class": "file-input"})


class TokenFilesField(forms.FileField):
    """Several files in one input; each one's problems are the preview's, not the form's."""

    widget = TokenFilesInput

    def clean(self, data, initial=None) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        files = [upload for upload in files if upload]
        if not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class BulkRenewalForm(forms.Form):
    token_files = TokenFilesField(
        label="Server tokens (.p7m), content tokens (.vpptoken) and the push certificate (.pem)",
        error_messages={"required": "Choose the .p7m, .vpptoken or .pem files to renew with."},
    )
    push_apple_id = forms.EmailField(
        label="Apple ID at the Apple Push Certificates Portal",
        required=False,
        help_text="Only with a .pem, and only if another Apple ID renewed it this time.",
    )

    def token_files_read(self) -> list[TokenFile]:
        # One byte more than the largest kind may have is enough for its intake to tell.
        most = max(settings.DEP_TOKEN_MAX_BYTES, settings.VPP_TOKEN_MAX_BYTES, PUSH_MAX) + 1
        return [
            TokenFile(upload.name, upload.read(most), size=upload.size)
            for upload in self.cleaned_data["token_files"]
        ]


class APITokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        validators=[name_validate],
        help_text="What the token is for, such as “renewal script on build01”.",
        error_messages={"required": "Give the token a name, to know later what uses it."},
    )
    expires_on = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. From the start of this day the API refuses the token.",
    )

    def clean_expires_on(self) -> date | None:
        expires_on = self.cleaned_data["expires_on"]
        if expires_on is not None and expires_on <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today, or leave it empty.")
        return expires_on

    def expires_at(self) -> datetime | None:
        """The start of the chosen day in the portal's time zone."""
        expires_on = self.cleaned_data["expires_on"]
        if expires_on is None:
            return None
        return timezone.make_aware(datetime.combine(expires_on, time.min))


class EmailListField(forms.CharField):
    """Email addresses, one a line or separated by commas; cleaned to one a line."""

    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value: str | None) -> str:
        addresses = (value or "").replace(",", "\n").split()
        invalid = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                invalid.append(address)
        if invalid:
            raise ValidationError(
                f"Not an email address: {', '.join(invalid)}. Write one address a line, "
                "or separate them with commas."
            )
        return "\n".join(dict.fromkeys(addresses))


class AccountEditForm(forms.Form):
    """Edit DEP Account: the account's settings and, optionally, a renewed server token."""

    SETTINGS = (
        "display_name",
        "notification_emails",
        "auto_sync",
        "sync_interval_minutes",
        "default_profile",
        "assign_default_profile",
    )

    display_name = forms.CharField(
        max_length=200,
        required=False,
        validators=[name_validate],
        help_text="Shown instead of the MDM server name. Leave empty to use the server name.",
    )
    notification_emails = EmailListField(
        label="Notification contacts",
        required=False,
        help_text="Who is reminded before the server token expires. One email address a line, "
        "or separated by commas.",
    )
    auto_sync = forms.BooleanField(label="Sync devices automatically", required=False)
    sync_interval_minutes = forms.IntegerField(
        label="Sync interval (minutes)",
        min_value=15,
        max_value=1440,
        help_text="Between 15 minutes and 1440 (a day).",
    )
    default_profile = forms.ModelChoiceField(
        label="Default enrollment profile",
        queryset=EnrollmentProfile.objects.none(),
        required=False,
        empty_label="No default profile",
    )
    assign_default_profile = forms.BooleanField(
        label="Assign it to new devices automatically", required=False
    )
    token_file = forms.FileField(
        label="Upload Token",
        required=False,
        allow_empty_file=True,
        widget=TokenFileInput(),
    )
    apple_id_changed = forms.BooleanField(label=APPLE_ID_CHANGED_LABEL, required=False)

    def __init__(self, *args, account: DEPAccount, **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {name: getattr(account, name) for name in self.SETTINGS}
            | {"notification_emails": "\n".join(account.notification_email_list)},
        )
        super().__init__(*args, **kwargs)
        default_profile = self.fields["default_profile"]
        assert isinstance(default_profile, forms.ModelChoiceField)
        default_profile.queryset = account.profiles.all()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("assign_default_profile") and not cleaned.get("default_profile"):
            self.add_error(
                "default_profile", "Choose the profile to assign to new devices, or untick it."
            )
        return cleaned

    def account_settings(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.SETTINGS}


class ProfileForm(forms.Form):
    account = forms.ModelChoiceField(
        label="DEP account", queryset=DEPAccount.objects.none(), empty_label=None
    )
    name = forms.CharField(max_length=125, label="Profile name", validators=[name_validate])
    url = forms.URLField(
        max_length=2000,
        label="MDM enrollment URL",
        assume_scheme="https",
        help_text="The URL devices fetch their enrollment profile from during Setup Assistant.",
    )
    is_supervised = forms.BooleanField(label="Supervise devices", required=False, initial=True)
    is_mandatory = forms.BooleanField(
        label="Enrollment is mandatory (users cannot skip it)", required=False, initial=True
    )
    is_mdm_removable = forms.BooleanField(label="Users may remove MDM", required=False)
    allow_pairing = forms.BooleanField(
        label="Allow pairing with computers", required=False, initial=True
    )
    department = forms.CharField(max_length=125, required=False, validators=[name_validate])
    support_phone_number = forms.CharField(
        max_length=50, required=False, label="Support phone number"
    )
    support_email_address = forms.EmailField(required=False, label="Support email address")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        account = self.fields["account"]
        assert isinstance(account, forms.ModelChoiceField)
        account.queryset = DEPAccount.objects.exclude(state=DEPAccount.State.AWAITING_TOKEN)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # Apple refuses (FLAGS_INVALID) an unsupervised profile whose MDM cannot be removed.
        if not cleaned.get("is_supervised") and not cleaned.get("is_mdm_removable"):
            self.add_error(
                "is_mdm_removable",
                "Users can always remove MDM from devices that are not supervised: tick this, "
                "or supervise the devices.",
            )
        return cleaned

    def profile_fields(self) -> dict:
        return {name: value for name, value in self.cleaned_data.items() if name != "account"}


class MakeDefaultForm(forms.Form):
    assign_to_new_devices = forms.BooleanField(
        label="Assign to new devices automatically", required=False
    )


class ProfileAssignForm(forms.Form):
    serials = forms.CharField(
        label="Serial numbers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "monospace"}),
        help_text="One serial number a line, or separated by commas or spaces.",
    )
    devices = forms.MultipleChoiceField(
        label="Devices without a profile", required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, candidates: list[DEPDevice], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        devices = self.fields["devices"]
        assert isinstance(devices, forms.MultipleChoiceField)
        devices.choices = [
            (d.serial_number, f"{d.serial_number} · {d.model or d.device_family}")
            for d in candidates
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        typed = (cleaned.get("serials") or "").replace(",", " ").upper().split()
        serials = list(dict.fromkeys([*typed, *cleaned.get("devices", [])]))
        if not serials:
            raise ValidationError("Type serial numbers or tick devices to assign the profile to.")
        cleaned["serial_list"] = serials
        return cleaned


class LicenceForm(forms.Form):
    licence_file = forms.FileField(label="Licence file", required=False)
    document = forms.CharField(
        label="Or paste the licence",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "monospace"}),
    )

    def clean_licence_file(self) -> UploadedFile | None:
        upload = self.cleaned_data["licence_file"]
        if upload and upload.size > LICENCE_MAX_BYTES:
            raise ValidationError(
                f"This file is {filesizeformat(upload.size)}; a licence is a few kilobytes. "
                "Choose the licence file you received from the vendor."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        upload, pasted = cleaned.get("licence_file"), (cleaned.get("document") or "").strip()
        if self.errors:
            return cleaned
        if upload and pasted:
            raise ValidationError("Upload the licence file or paste it, not both.")
        if upload:
            try:
                cleaned["document"] = upload.read().decode()
            except UnicodeDecodeError:
                self.add_error("licence_file", "This is not a licence: it is not a text file.")
        elif pasted:
            cleaned["document"] = pasted
        else:
            raise ValidationError("Upload the licence file or paste its text.")
        return cleaned


class DeviceFilterForm(forms.Form):
    q = forms.CharField(label="Serial number", required=False, max_length=64)
    # A link from an account's page filters by its id; a person types part of a name. No
    # drop-down: at a thousand accounts it would outweigh the page it filters.
    account = forms.ModelChoiceField(
        queryset=DEPAccount.objects.exclude(state=DEPAccount.State.AWAITING_TOKEN),
        required=False,
        widget=forms.HiddenInput,
    )
    account_name = forms.CharField(
        label="DEP account", required=False, max_length=255, help_text="Part of its name"
    )
    profile_status = forms.ChoiceField(
        label="Profile status", choices=PROFILE_STATUSES, required=False
    )
    removed = forms.BooleanField(label="Show removed devices", required=False)


class AuditFilterForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=DEPAccount.objects.all(), required=False, widget=forms.HiddenInput
    )
    account_name = forms.CharField(
        label="DEP account", required=False, max_length=255, help_text="Part of its name"
    )
    action = forms.ChoiceField(
        choices=[("", "All actions"), *AuditEvent.Action.choices], required=False
    )


# Imported last: they use the fields above.
from dep_accounts.forms.credentials import ContentTokenForm, PushCertificateForm  # noqa: E402

__all__ = [
    "APITokenForm",
    "AccountEditForm",
    "AuditFilterForm",
    "BulkRenewalForm",
    "ContentTokenForm",
    "DeviceFilterForm",
    "EmailListField",
    "LicenceForm",
    "MakeDefaultForm",
    "ProfileAssignForm",
    "ProfileForm",
    "PushCertificateForm",
    "TokenUploadForm",
]
