"""GET /session: OAuth 1.0a verification, and the X-ADM-Auth-Session tokens it hands out.

Apple's rules (docs/apple-dep.md section 3; what the live service really sends is in
docs/apple-answers.md): a session ends after extended inactivity (here 5 simulated minutes), and
any response may carry a new X-ADM-Auth-Session to use from then on. Here a session rotates on
every 10th request and whenever it is 2 minutes old; the replaced value keeps working for 30
simulated seconds so requests already in flight are not refused.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from oauthlib.oauth1 import RequestValidator, ResourceEndpoint

from applesim.database import timestamp
from applesim.store import SimStore

SESSION_IDLE_LIMIT = timedelta(minutes=5)
SESSION_ROTATION_AGE = timedelta(minutes=2)
SESSION_ROTATION_REQUESTS = 10
SESSION_GRACE = timedelta(seconds=30)


class _ServerTokenValidator(RequestValidator):
    """Checks /session requests against the issued server tokens, the way Apple would."""

    allowed_signature_methods = ("HMAC-SHA1",)
    enforce_ssl = False
    safe_characters = set(string.ascii_letters + string.digits + "_-")
    client_key_length = (10, 200)
    access_token_length = (10, 200)
    nonce_length = (8, 64)
    dummy_client = "CK_dummy_consumer_key"
    dummy_access_token = "AT_dummy_access_token"

    def __init__(self, store: SimStore) -> None:
        super().__init__()
        self.store = store

    def _secret(self, column: str, client_key: str, token: str | None = None) -> str | None:
        condition = "consumer_key = ?" + (" AND access_token = ?" if token else "")
        row = self.store.query_one(
            f"SELECT {column} FROM server_token WHERE {condition}",  # noqa: S608 (fixed names)
            (client_key, token) if token else (client_key,),
        )
        return row[0] if row else None

    def validate_client_key(self, client_key: str, request: object) -> bool:
        return self._secret("consumer_secret", client_key) is not None

    def validate_access_token(self, client_key: str, token: str, request: object) -> bool:
        return self.store.server_token(client_key, token) is not None

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: object,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        with self.store.transaction() as connection:
            # Timestamps outside oauthlib's ten-minute window are refused before this point.
            connection.execute(
                "DELETE FROM oauth_nonce WHERE timestamp < ?", (int(time.time()) - 900,)
            )
            inserted = connection.execute(
                "INSERT OR IGNORE INTO oauth_nonce (consumer_key, timestamp, nonce)"
                " VALUES (?, ?, ?)",
                (client_key, int(timestamp), nonce),
            )
        return inserted.rowcount == 1

    def validate_realms(self, *args: object, **kwargs: object) -> bool:
        # zentral sends realm="ADM", the others none; Apple ignores it.
        return True

    def get_client_secret(self, client_key: str, request: object) -> str:
        return self._secret("consumer_secret", client_key) or "dummy"

    def get_access_token_secret(self, client_key: str, token: str, request: object) -> str:
        return self._secret("access_secret", client_key, token) or "dummy"


class ServerTokenReset(Exception):
    """The session's server token was reset by a newer download in ABM."""


@dataclass
class AuthSession:
    token: str
    server_token_id: int
    mdm_server_id: int
    created_at: datetime
    last_used_at: datetime
    requests: int = 0
    replaced_at: datetime | None = None
    successor: str | None = None


class AuthSessions:
    """Verifies /session requests and keeps the sessions they open, in memory.

    Like depsim after a restart, a restarted simulator has forgotten every session.
    """

    def __init__(self, store: SimStore) -> None:
        self.store = store
        self._endpoint = ResourceEndpoint(_ServerTokenValidator(store))
        self._lock = threading.Lock()
        self._sessions: dict[str, AuthSession] = {}

    def server_token_verified(self, uri: str, headers: dict[str, str]) -> tuple[int | None, str]:
        """The id of the server token that signed this request, or None and why Apple refuses:
        "reset" (a newer download in ABM reset the token), "mismatch" (the keys are not one
        token's, or the signature does not match their secrets) or "unauthorized"."""
        valid, request = self._endpoint.validate_protected_resource_request(
            uri, http_method="GET", body=None, headers=headers
        )
        # A refused request's keys are replaced with dummies, so read them as they were sent;
        # no validator log means a reused nonce or a missing parameter, which stay a 401.
        if request is None or "signature" not in request.validator_log:
            return None, "unauthorized"
        params = dict(request.oauth_params)
        keys = (params.get("oauth_consumer_key", ""), params.get("oauth_token", ""))
        if valid:
            server_token = self.store.server_token(*keys)
            if server_token is not None:
                return server_token["id"], ""
        if self.store.server_token_reset(*keys):
            return None, "reset"
        issued = self.store.query_one(
            "SELECT access_token, revoked, expires_at FROM server_token WHERE consumer_key = ?",
            (keys[0],),
        )
        now = timestamp(self.store.now())
        if issued is not None and not issued["revoked"] and issued["expires_at"] > now:
            # A known, live consumer key with someone else's access token or wrong secrets.
            return None, "mismatch"
        return None, "unauthorized"

    def open(self, server_token_id: int, mdm_server_id: int) -> str:
        now = self.store.now()
        session = AuthSession(self._token_new(now), server_token_id, mdm_server_id, now, now)
        with self._lock:
            # Forget sessions nobody can use any more, so a long-running simulator stays small.
            self._sessions = {
                token: kept
                for token, kept in self._sessions.items()
                if not self._expired(kept, now)
            }
            self._sessions[session.token] = session
        return session.token

    def _token_new(self, now: datetime) -> str:
        # Shaped like the one in petarov's fixture: epoch ms, "O1O", then opaque hex.
        return f"{int(now.timestamp() * 1000)}O1O{secrets.token_hex(32).upper()}"

    def use(self, token: str | None) -> tuple[AuthSession | None, str | None]:
        """The live session behind a token and the new token the response should carry, if any.

        Raises ServerTokenReset when a newer download in ABM reset the session's server token.
        """
        if not token:
            return None, None
        now = self.store.now()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None, None
            if self._server_token_was_reset(session):
                del self._sessions[token]
                raise ServerTokenReset
            if self._expired(session, now) or not self._server_token_usable(session):
                del self._sessions[token]
                return None, None
            session.last_used_at = now
            session.requests += 1
            if session.successor is not None:
                return session, session.successor
            if (
                session.requests % SESSION_ROTATION_REQUESTS == 0
                or now - session.created_at >= SESSION_ROTATION_AGE
            ):
                successor = AuthSession(
                    self._token_new(now),
                    session.server_token_id,
                    session.mdm_server_id,
                    now,
                    now,
                )
                self._sessions[successor.token] = successor
                session.replaced_at, session.successor = now, successor.token
                return session, successor.token
            return session, None

    def _server_token_was_reset(self, session: AuthSession) -> bool:
        return bool(
            self.store.query_one(
                "SELECT 1 FROM server_token WHERE id = ? AND revoked = 1",
                (session.server_token_id,),
            )
        )

    def _server_token_usable(self, session: AuthSession) -> bool:
        """False once the server token is revoked by a newer download, or expired."""
        return bool(
            self.store.query_one(
                "SELECT 1 FROM server_token WHERE id = ? AND revoked = 0 AND expires_at > ?",
                (session.server_token_id, timestamp(self.store.now())),
            )
        )

    def _expired(self, session: AuthSession, now: datetime) -> bool:
        if now - session.last_used_at > SESSION_IDLE_LIMIT:
            return True
        return session.replaced_at is not None and now - session.replaced_at > SESSION_GRACE

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
