"""Scenario 7: renewing a server token: decrypt the .p7m, ask Apple, save, within 2x of the
bare round trip to applesim.

Each renewal takes a token file applesim has just issued for the account's public key (the
download is not timed: it stands for the admin's download in ABM) and goes through
`token_intake`, as the Edit page does. The baseline is the same client's call to Apple alone:
a new DEPClient from the token's credentials asking for /account (its OAuth session included),
as `token_check` does. Each round trip follows its renewal, with the token it stored.
"""

from __future__ import annotations

from django.conf import settings

from applesim.testing import sim_start
from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, ratio_text, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount
from dep_accounts.services.accounts import account_create
from dep_accounts.services.apple_access import dep_client_for_token, server_token_credentials
from dep_accounts.services.intake import TokenFile, token_intake


def _upload(account: DEPAccount, token_file: bytes) -> None:
    token_intake(account=account, upload=TokenFile("smime.p7m", token_file), actor=None)


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    sim = sim_start()
    try:
        settings.DEP_API_URL = sim.url
        control = sim.control
        data.licence_create()
        org_id = control.organisation_create("Bench Schools", apple_ids=["it@bench.example"])
        server_uuid = control.server_create(org_id, "Bench MDM")
        account = account_create(actor=None)
        control.sign_in(org_id=org_id, apple_id="it@bench.example")
        control.public_key_upload(server_uuid, account.key_pair.certificate_pem.encode())
        _upload(account, control.token_download(server_uuid))

        def round_trip() -> None:
            current = account.server_tokens.get(is_current=True)
            dep_client_for_token(server_token_credentials(current)).account()

        renewals, trips = [], []
        for repeat in range(size.renewal_repeats + 1):
            token_file = control.token_download(server_uuid)
            renew = lambda token_file=token_file: _upload(account, token_file)  # noqa: E731
            if repeat == 0:  # warm-up, untimed
                renew()
                round_trip()
                continue
            # A download resets the token before it at Apple: the renewal goes first.
            renewals.append(timed(renew)[0])
            trips.append(timed(round_trip)[0])
        profiled(
            f"renewal-{database}",
            lambda: _upload(account, control.token_download(server_uuid)),
        )
    finally:
        sim.stop()
    if account.server_tokens.count() != size.renewal_repeats + 3:
        raise RuntimeError("The renewals did not each store a new server token.")
    if DEPAccount.objects.get(pk=account.pk).state != DEPAccount.State.OK:
        raise RuntimeError("The renewed account is not OK.")

    measured, baseline = median(renewals), median(trips)
    return [
        Row(
            key=f"renewal.{database}",
            scenario=f"7. Token renewal (decrypt + Apple + save), {label}",
            measured=ms(measured),
            baseline=f"bare round trip to applesim {ms(baseline)}",
            ratio=ratio_text(measured / baseline),
            target="<= 2x the round trip",
            met=measured <= 2 * baseline,
            facts={"renewal_seconds": renewals, "round_trip_seconds": trips},
        )
    ]
