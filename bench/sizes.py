"""How big each scenario is: the full size of issue 5, and a small one that checks the scripts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    # 1, 2: device sync from applesim
    devices: int
    changed_devices: int
    sync_repeats: int
    incremental_repeats: int
    # 3, 4: pages, measured over a few accounts (or devices) and over many
    accounts_few: int
    accounts_many: int
    devices_few: int
    devices_many: int
    page_requests: int
    banner_requests: int
    # 5: the expiry task
    expiry_accounts_few: int
    expiry_accounts: int
    expiry_repeats: int
    # How far the clock moves between two runs of the expiry task: the beat's hour at full size.
    expiry_step_hours: int
    # 6: under load
    load_accounts: int
    load_seconds: float
    load_threads: int
    # 7: token renewal
    renewal_repeats: int
    # 11: scale-out
    scaleout_accounts: int
    scaleout_devices: int
    child_timeout: float


SIZES = {
    "full": Size(
        name="full",
        devices=100_000,
        changed_devices=1_000,
        sync_repeats=3,
        incremental_repeats=5,
        accounts_few=10,
        accounts_many=1_000,
        devices_few=1_000,
        devices_many=100_000,
        page_requests=60,
        banner_requests=400,
        expiry_accounts_few=100,
        expiry_accounts=10_000,
        expiry_repeats=7,
        expiry_step_hours=1,
        load_accounts=100,
        load_seconds=6.0,
        load_threads=8,
        renewal_repeats=15,
        scaleout_accounts=200,
        scaleout_devices=500,
        child_timeout=900,
    ),
    "small": Size(
        name="small",
        devices=2_000,
        changed_devices=20,
        sync_repeats=1,
        incremental_repeats=2,
        accounts_few=10,
        accounts_many=120,
        # Fewer than a page of 100: the two sizes render different rows.
        devices_few=40,
        devices_many=2_000,
        page_requests=5,
        banner_requests=10,
        expiry_accounts_few=20,
        expiry_accounts=200,
        expiry_repeats=2,
        # 200 accounts: an hour moves none of them.
        expiry_step_hours=48,
        load_accounts=100,
        load_seconds=1.0,
        load_threads=4,
        renewal_repeats=3,
        scaleout_accounts=4,
        scaleout_devices=50,
        child_timeout=180,
    ),
}
