"""The Demo IdP (idpsim/, Node's oidc-provider) started for a test, and the settings that use it."""

from __future__ import annotations

import copy
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import BASE_DIR, free_port, http_answers, wait_until

IDPSIM = BASE_DIR / "idpsim"
# The users idpsim/server.js knows, with the group claim each carries.
ADMIN = ("ada.admin", "ada-demo-password")
VIEWER = ("victor.viewer", "victor-demo-password")
NO_ROLE = ("nora.norole", "nora-demo-password")


@dataclass
class RunningIdp:
    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen
    log: Path
    redirect_uris: list[str] = field(default_factory=list)

    def provider_settings(self) -> dict:
        """One entry of settings.OIDC_PROVIDERS, as OIDC_DEMO_* would configure it."""
        return {
            "provider_id": "demo",
            "name": "Demo IdP",
            "client_id": self.client_id,
            "secret": self.client_secret,
            "settings": {
                "server_url": self.issuer,
                "oauth_pkce_enabled": True,
                "role_claim": "groups",
                "admin_values": ["mdm-admins"],
                "viewer_values": ["mdm-viewers"],
            },
        }

    def configure(self, settings) -> None:
        """Make the Demo IdP the portal's one identity provider (pytest-django's `settings`)."""
        settings.OIDC_PROVIDERS = [self.provider_settings()]
        settings.SOCIALACCOUNT_PROVIDERS = {
            "openid_connect": {"APPS": settings.OIDC_PROVIDERS, "OAUTH_PKCE_ENABLED": True}
        }
        policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
        policy["DIRECTIVES"]["form-action"] = [*policy["DIRECTIVES"]["form-action"], self.issuer]
        settings.CONTENT_SECURITY_POLICY = policy

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def idpsim_start(*, portal: str, log_dir: Path) -> RunningIdp:
    """Start idpsim on a free port for a portal at `portal` (its callback and sign-in URLs)."""
    if not (IDPSIM / "node_modules" / "oidc-provider").exists():
        raise AssertionError("idpsim is not installed: run `make test` (it runs `npm ci`).")
    port = free_port()
    secret = secrets.token_urlsafe(24)
    redirect = f"{portal}/accounts/oidc/demo/login/callback/"
    log = log_dir / f"idpsim-{port}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                "node",
                str(IDPSIM / "server.js"),
                f"--port={port}",
                f"--client-secret={secret}",
                f"--redirect-uri={redirect}",
                f"--post-logout-redirect-uri={portal}/accounts/login/",
            ],
            cwd=IDPSIM,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    issuer = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: (
            process.poll() is None and http_answers(issuer + "/.well-known/openid-configuration")
        ),
        timeout=20,
        what=f"idpsim to answer (log: {log})",
    )
    return RunningIdp(
        issuer=issuer,
        client_id="mdmportal",
        client_secret=secret,
        process=process,
        log=log,
        redirect_uris=[redirect],
    )
