"""Small display rules of the console's template filters."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from dep_accounts.templatetags.console import ago, apple_label, thousands


def test_a_sync_within_the_last_minute_reads_just_now():
    assert ago(timezone.now() - timedelta(seconds=20)) == "just now"
    assert ago(timezone.now() - timedelta(minutes=5)) == "5\xa0minutes ago"


def test_fleet_sizes_and_apple_values_read_as_an_admin_expects():
    assert thousands(100000) == "100,000"
    assert apple_label("OSX") == "macOS"
    assert apple_label("empty") == "No profile"
    assert apple_label("iOS") == "iOS"
