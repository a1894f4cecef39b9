"""The production topology of docker-compose.yml, run natively: PostgreSQL, Redis, gunicorn, a
Celery worker, Celery beat and applesim as separate processes, configured by environment
variables only, as `.env` configures the containers.

Needs this machine's PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379); `make test` starts
them.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from applesim.testing import SimControl
from tests.processes import (
    BASE_DIR,
    BIN,
    Process,
    Processes,
    free_port,
    logs_on_failure,
    manage,
    portal_env,
    wait_until,
)

pytestmark = pytest.mark.production

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
APPLE_ID = "it.admin@springfield.example"
ADMIN = ("ops.admin", "ops.admin@springfield.example")
CONTACT = "mdm-team@springfield.example"
DEVICES = 2500
DEADLINE = 60.0

# Runs in `manage.py shell` with the production environment: the portal's side of the seed,
# through the same services as seed_demo (which needs the development licence key).
SEED = """
import json, os
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.conf import settings
from applesim.testing import SimControl
from dep_accounts.models import Banner, DEPAccount
from dep_accounts.roles import ADMINS
from dep_accounts.services.licence import licence_install
from dep_accounts.services.accounts import account_create, account_update
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.verdict import Intent

seed = json.loads(os.environ["TOPOLOGY_SEED"])
admin = get_user_model().objects.create_user(
    seed["username"], seed["email"], seed["password"]
)
admin.groups.add(Group.objects.get(name=ADMINS))
licence_install(document=seed["licence"], actor=None)
account = account_create(actor=admin, display_name="Springfield district")
abm = SimControl(settings.DEP_API_URL)
abm.sign_in(seed["apple_id"], org_id=seed["org_id"])
abm.public_key_upload(seed["server_uuid"], account.key_pair.certificate_pem.encode())
token_file = abm.token_download(seed["server_uuid"], validity_days=10)
check = token_check(account=account, token_file=token_file)
token_take(account=account, check=check, actor=admin, file_name="smime.p7m", intent=Intent.ADD)
account_update(account=account, actor=admin, notification_emails=seed["contact"])
# As if the token had been uploaded weeks ago and had aged since: the worker, not the upload,
# must find that it expires soon and put it on the banner.
DEPAccount.objects.filter(pk=account.pk).update(state="ok", state_detail="")
Banner.objects.all().delete()
print(json.dumps({"account_id": account.pk}))
"""


def _services_reachable() -> None:
    try:
        psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3).close()
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as exc:
        pytest.fail(
            f"The production topology needs PostgreSQL on 127.0.0.1:5432 and Redis on "
            f"127.0.0.1:6379 ({exc}). `make test` starts them."
        )


# Claims a Redis database only if it is empty, in one step: two runs of this test at once (or
# anyone else's data) never share a broker.
REDIS_CLAIM = """
if redis.call('dbsize') == 0 then
  redis.call('set', KEYS[1], ARGV[1], 'EX', 600)
  return 1
end
return 0
"""


def _redis_db_claim() -> redis.Redis:
    for number in range(1, 16):
        broker = redis.Redis.from_url(f"{REDIS}/{number}")
        if broker.eval(REDIS_CLAIM, 1, "mdmportal-topology-test", secrets.token_hex(8)):
            return broker
        broker.close()
    pytest.fail("No empty Redis database (1-15) for the broker: flush the ones left by old runs.")


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database and an empty Redis database: their URLs, both gone after."""
    _services_reachable()
    name = f"mdmportal_topology_{secrets.token_hex(4)}"
    broker = _redis_db_claim()
    try:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as server:
            server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES}/{name}", f"{REDIS}/{broker.connection_pool.connection_kwargs['db']}"
        finally:
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as server:
                server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        broker.flushdb()
        broker.close()


def _licence_keys() -> tuple[str, str]:
    """The vendor's Ed25519 key pair: (signing key, public key), raw bytes in base64."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    return base64.b64encode(key.private_bytes_raw()).decode(), base64.b64encode(public).decode()


def _production_env(
    *,
    var_dir: Path,
    database_url: str,
    broker_url: str,
    public_key: str,
    applesim_url: str,
    web_port: int,
) -> dict[str, str]:
    return portal_env(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECRETS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        LICENCE_PUBLIC_KEY=public_key,
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        DEP_API_URL=applesim_url,
        # django-environ drops the first slash of the path: four make it absolute.
        EMAIL_URL=f"filemail:///{var_dir / 'mail'}",
        DEFAULT_FROM_EMAIL="mdmportal <mdmportal@springfield.example>",
        ALLOWED_HOSTS="127.0.0.1",
        CSRF_TRUSTED_ORIGINS=f"https://127.0.0.1:{web_port}",
        PORTAL_BASE_URL=f"https://127.0.0.1:{web_port}",
        MDMPORTAL_VAR_DIR=str(var_dir),
        # The tests speak as nginx does (X-Forwarded-Proto), which only a trusted proxy may.
        TRUSTED_PROXY_COUNT="1",
    )


def test_deploy_check_is_clean_with_production_environment(tmp_path):
    env = _production_env(
        var_dir=tmp_path,
        database_url="postgres://mdmportal@db.example:5432/mdmportal",
        broker_url="redis://redis.example:6379/0",
        public_key=_licence_keys()[1],
        applesim_url="https://mdmenrollment.apple.com",
        web_port=443,
    )
    output = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in output


class Portal:
    """Reads the portal's database directly, as an operator with psql would."""

    def __init__(self, database_url: str) -> None:
        self.connection = psycopg.connect(database_url, autocommit=True)

    def one(self, sql: str, *params):
        return self.connection.execute(sql, params).fetchone()

    def account(self, account_id: int, field: str):
        sql = f"SELECT {field} FROM dep_accounts_depaccount WHERE id = %s"
        return self.one(sql, account_id)[0]

    def ended_sync_result(self, account_id: int) -> str:
        result = self.account(account_id, "last_sync_result")
        return result if result not in ("never", "running") else ""

    def banner_items(self) -> list[dict[str, str]]:
        row = self.one("SELECT items FROM dep_accounts_banner WHERE id = 1")
        return row[0] if row else []

    def serials(self, account_id: int) -> list[str]:
        rows = self.connection.execute(
            "SELECT serial_number FROM dep_accounts_depdevice "
            "WHERE account_id = %s AND removed_at IS NULL",
            (account_id,),
        )
        return [serial for (serial,) in rows]


def _emails(mail_dir: Path) -> list[str]:
    """Each message the file-based email backend wrote (it ends each with a line of dashes)."""
    if not mail_dir.exists():
        return []
    messages = []
    for path in sorted(mail_dir.iterdir()):
        messages += [m for m in path.read_text().split("-" * 79 + "\n") if m.strip()]
    return messages


class Browser:
    """A browser reaching gunicorn through the TLS-terminating proxy of a deployment.

    The proxy says so with X-Forwarded-Proto. The portal's cookies are Secure, and this side
    of the proxy is plain HTTP, so the browser's cookies are carried here by hand.
    """

    def __init__(self, base_url: str, origin: str) -> None:
        self.base_url = base_url
        self.origin = origin
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **options) -> requests.Response:
        headers = {
            "X-Forwarded-Proto": "https",
            "Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items()),
        }
        if method == "POST":
            headers |= {"Origin": self.origin, "Referer": self.origin + path}
        response = requests.request(
            method,
            self.base_url + path,
            headers=headers,
            allow_redirects=False,
            timeout=10,
            **options,
        )
        self.cookies |= dict(response.cookies.items())
        return response

    def sign_in(self, username: str, password: str) -> requests.Response:
        form = self.request("GET", "/accounts/login/")
        assert form.status_code == 200
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert csrf, "the sign-in form carries a CSRF token"
        fields = {"login": username, "password": password, "next": "/"}
        return self.request(
            "POST", "/accounts/login/", data={"csrfmiddlewaretoken": csrf.group(1), **fields}
        )


@dataclass
class Topology:
    processes: Processes
    env: dict[str, str]
    portal: Portal
    abm: SimControl
    server_uuid: str
    account_id: int
    password: str
    web_url: str
    web_port: int
    mail_dir: Path
    beat_started: float

    def process(self, name: str) -> Process:
        [process] = [p for p in self.processes.started if p.name == name]
        return process

    def browser(self) -> Browser:
        return Browser(self.web_url, f"https://127.0.0.1:{self.web_port}")


@pytest.fixture(scope="module")
def topology(services, tmp_path_factory) -> Iterator[Topology]:
    """docker-compose.yml's services, started natively, after a seed of the portal and ABM."""
    database_url, broker_url = services
    root = tmp_path_factory.mktemp("topology")
    signing_key, public_key = _licence_keys()
    applesim_port, web_port = free_port(), free_port()
    applesim_url = f"http://127.0.0.1:{applesim_port}"
    env = _production_env(
        var_dir=root / "var",
        database_url=database_url,
        broker_url=broker_url,
        public_key=public_key,
        applesim_url=applesim_url,
        web_port=web_port,
    )
    celery = [str(BIN / "celery"), "-A", "mdmportal"]
    # docker-compose.yml's command: the production config, on loopback instead of 0.0.0.0.
    gunicorn = [str(BIN / "gunicorn"), "mdmportal.wsgi", "--config", "gunicorn.conf.py"]
    gunicorn += ["--bind", f"127.0.0.1:{web_port}"]
    # A control socket of its own: natively, unlike in a container, the default one is shared.
    gunicorn += ["--control-socket", str(root / "gunicorn.ctl")]
    processes = Processes(root, env)
    try:
        with logs_on_failure(processes):
            processes.applesim(applesim_port, root / "applesim.sqlite3")
            beat_started = time.monotonic()
            schedule = str(root / "beat-schedule")
            processes.start("beat", [*celery, "beat", "--loglevel", "INFO", "--schedule", schedule])
            manage(env, "migrate", "--noinput")
            manage(env, "collectstatic", "--noinput")

            abm = SimControl(applesim_url)
            org_id = abm.organisation_create("Springfield Public Schools", apple_ids=[APPLE_ID])
            server_uuid = abm.server_create(org_id, "Springfield MDM")
            abm.devices_add(server_uuid, DEVICES)
            password = secrets.token_urlsafe(16)
            seed = {
                "username": ADMIN[0],
                "email": ADMIN[1],
                "password": password,
                "contact": CONTACT,
                "apple_id": APPLE_ID,
                "org_id": org_id,
                "server_uuid": server_uuid,
                "licence": _licence_document(signing_key),
            }
            seeded = manage(env | {"TOPOLOGY_SEED": json.dumps(seed)}, "shell", "-c", SEED)
            account_id = json.loads(seeded.strip().splitlines()[-1])["account_id"]
            portal = Portal(database_url)
            assert portal.banner_items() == [], "the seed leaves the banner to the worker"

            processes.start("web", [*gunicorn, "--workers", "2"])
            processes.start("worker", [*celery, "worker", "--concurrency", "2", "-l", "INFO"])
        yield Topology(
            processes=processes,
            env=env,
            portal=portal,
            abm=abm,
            server_uuid=server_uuid,
            account_id=account_id,
            password=password,
            web_url=f"http://127.0.0.1:{web_port}",
            web_port=web_port,
            mail_dir=root / "var" / "mail",
            beat_started=beat_started,
        )
        portal.connection.close()
    finally:
        processes.stop_all()


def test_worker_puts_the_near_expiry_account_on_the_banner(topology):
    with logs_on_failure(topology.processes):
        items = wait_until(
            topology.portal.banner_items, timeout=DEADLINE, what="the worker to compute the banner"
        )
        edit_url = f"/admin/apple-dep/dep-accounts/{topology.account_id}/edit/"
        [item] = [i for i in items if i["url"].startswith(edit_url)]
        assert item["level"] == "warning"
        assert "“Springfield district” expires in 10 days" in item["text"]
        assert topology.portal.account(topology.account_id, "state") == "warning"


def test_first_sync_runs_through_the_worker_to_apples_device_set(topology):
    with logs_on_failure(topology.processes):
        result = wait_until(
            lambda: topology.portal.ended_sync_result(topology.account_id),
            timeout=DEADLINE,
            what="the first sync, queued by the worker's dispatcher, to end",
        )
        assert result == "ok", topology.portal.account(topology.account_id, "last_sync_message")
        serials = topology.portal.serials(topology.account_id)
        assert len(serials) == len(set(serials)) == DEVICES
        assert set(serials) == topology.abm.device_serials(topology.server_uuid)


def test_one_reminder_is_sent_even_when_the_expiry_task_runs_again(topology):
    with logs_on_failure(topology.processes):
        [email] = wait_until(
            lambda: _emails(topology.mail_dir), timeout=DEADLINE, what="the reminder"
        )
        # 14 days before expiry is the step due; it goes to the contact and to the admins.
        assert "Subject: DEP server token of Springfield district expires in 10 days" in email
        assert re.search(rf"^To: .*{CONTACT}", email, re.MULTILINE)
        assert ADMIN[1] in email

        called = subprocess.run(
            [
                str(BIN / "celery"),
                "-A",
                "mdmportal",
                "call",
                "dep_accounts.tasks.token_expiry_refresh",
            ],
            env=topology.env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        task_id = called.stdout.strip()
        worker = topology.process("worker")
        wait_until(
            lambda: f"token_expiry_refresh[{task_id}] succeeded" in worker.log(),
            timeout=DEADLINE,
            what="the second expiry run",
        )
        assert len(_emails(topology.mail_dir)) == 1
        assert topology.portal.one("SELECT count(*) FROM dep_accounts_remindersent")[0] == 1


def test_gunicorn_serves_the_banner_to_an_admin_who_signs_in(topology):
    with logs_on_failure(topology.processes):
        login_url = f"{topology.web_url}/accounts/login/"
        wait_until(lambda: _answers(login_url), timeout=DEADLINE, what="gunicorn")
        plain = requests.get(login_url, allow_redirects=False, timeout=10)
        assert plain.status_code == 301, "plain HTTP is sent to HTTPS"
        assert plain.headers["Location"].startswith("https://")

        browser = topology.browser()
        signed_in = browser.sign_in(ADMIN[0], topology.password)
        assert signed_in.status_code == 302, signed_in.text[:2000]
        assert urllib.parse.urlsplit(signed_in.headers["Location"]).path == "/"
        items = wait_until(topology.portal.banner_items, timeout=DEADLINE, what="the banner")
        dashboard = browser.request("GET", "/")
        assert dashboard.status_code == 200
        for item in items:
            assert html.escape(item["text"]) in dashboard.text


SLOW_CLIENTS = 3


def test_three_slow_clients_do_not_delay_a_normal_request(topology):
    """Clients that send their headers slowly (or never finish them) hold a thread each, not a
    worker: with sync workers, three of them made a normal request wait 31 s."""
    with logs_on_failure(topology.processes):
        login_url = f"{topology.web_url}/accounts/login/"
        wait_until(lambda: _answers(login_url), timeout=DEADLINE, what="gunicorn")
        slow = [
            socket.create_connection(("127.0.0.1", topology.web_port), timeout=5)
            for _ in range(SLOW_CLIENTS)
        ]
        try:
            for connection in slow:
                connection.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            time.sleep(0.5)  # the slow clients are read first
            for connection in slow:
                connection.sendall(b"X-Slow: 1\r\n")
            started = time.monotonic()
            response = requests.get(login_url, headers={"X-Forwarded-Proto": "https"}, timeout=60)
            waited = time.monotonic() - started
        finally:
            for connection in slow:
                connection.close()
        assert response.status_code == 200
        assert waited < 3, f"a normal request waited {waited:.1f} s behind {SLOW_CLIENTS} slow ones"


def test_beat_schedules_the_sync_dispatcher_that_the_worker_runs(topology):
    # Last: beat sends its first dispatch a minute after it starts.
    with logs_on_failure(topology.processes):
        beat, worker = topology.process("beat"), topology.process("worker")
        wait_until(
            lambda: "Sending due task dep-sync-dispatch" in beat.log(),
            timeout=75 - (time.monotonic() - topology.beat_started),
            what="beat to send the sync dispatcher",
        )
        dispatches = re.compile(r"syncs_dispatch_due\[[-0-9a-f]+\] succeeded")
        wait_until(
            lambda: len(dispatches.findall(worker.log())) >= 2,
            timeout=15,
            what="the worker to run the dispatcher beat sent (after the one it ran at start)",
        )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, headers={"X-Forwarded-Proto": "https"}, timeout=2).ok
    except requests.ConnectionError:
        return False


def _licence_document(signing_key: str) -> str:
    from django.utils import timezone

    from dep_accounts.services.licence import licence_document_issue

    now = timezone.now()
    return licence_document_issue(
        signing_key=signing_key,
        customer="Springfield Public Schools",
        plan="Education",
        device_limit=10_000,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
