"""Forms of the monitoring pages: they validate input only; the views call the services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from dep_accounts.models import Webhook
from dep_accounts.services.webhook_transport import url_has_credentials


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Receiver URL",
        max_length=500,
        assume_scheme="https",
        validators=[URLValidator(schemes=["https", "http"])],
        help_text="mdmportal POSTs each event here as JSON, signed with the webhook's secret.",
    )
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Choose at least one event.",
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if url_has_credentials(url):
            raise ValidationError(
                "Take the user name and password out of the URL: they would be stored and shown "
                "in clear. The receiver checks each request's signature with the webhook's secret."
            )
        return url


class WebhookChangeForm(forms.Form):
    """Pause, resume or delete one webhook."""

    webhook = forms.ModelChoiceField(queryset=Webhook.objects.all())
    action = forms.ChoiceField(
        choices=[("pause", "Pause"), ("resume", "Resume"), ("delete", "Delete")]
    )
