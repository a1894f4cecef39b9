"""The HTTP side: one stdlib ThreadingHTTPServer carrying Apple's services, its pages and /_sim/.

/mdm/v2/ is the Apps and Books service, /pushcert/ the Push Certificates Portal, /abm/ ABM, and
everything else the DEP web service.
"""

from __future__ import annotations

import hmac
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from applesim.abm import ABMPages
from applesim.apps_books import PREFIX as APPS_BOOKS_PREFIX
from applesim.apps_books import AppsBooks
from applesim.control import ControlAPI
from applesim.control_credentials import CredentialsControl
from applesim.credential_pages import PushCertPortal
from applesim.dep import DEPService
from applesim.faults import FaultScripts
from applesim.pushcerts import PushCertificates
from applesim.store import SimStore
from applesim.web import Request, Response

logger = logging.getLogger("applesim")


class Simulator:
    """Apple's side in one object: the state and the three faces it shows."""

    def __init__(self, store: SimStore, *, control_token: str = "") -> None:
        self.store = store
        # Required as "Authorization: Bearer <token>" on /_sim/ when set (a non-loopback bind).
        self.control_token = control_token
        self.faults = FaultScripts()
        self.dep = DEPService(store, self.faults)
        self.apps_books = AppsBooks(store, self.faults)
        self.push_certificates = PushCertificates(store)
        credentials = CredentialsControl(self.apps_books, self.push_certificates)
        self.control = ControlAPI(store, self.dep, self.faults, extra_routes=credentials.routes)
        self.abm = ABMPages(store, self.apps_books)
        self.push_portal = PushCertPortal(self.push_certificates)

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_sim/"):
            if self.control_token and not hmac.compare_digest(
                (request.header("Authorization") or "").encode(),
                f"Bearer {self.control_token}".encode(),
            ):
                return Response(
                    401,
                    json.dumps(
                        {
                            "error": "unauthenticated",
                            "message": "Send the control token as Authorization: Bearer <token>.",
                        }
                    ).encode(),
                    content_type="application/json",
                )
            return self.control.handle(request)
        if request.path.startswith(APPS_BOOKS_PREFIX):
            return self.apps_books.handle(request)
        if request.path == "/pushcert" or request.path.startswith("/pushcert/"):
            return self.push_portal.handle(request)
        if request.path in ("/", "/abm") or request.path.startswith("/abm/"):
            return self.abm.handle(request)
        return self.dep.handle(request)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as Apple's front end does; every answer has a length.
    protocol_version = "HTTP/1.1"
    server_version = "applesim/0.1"
    sys_version = ""
    server: SimHTTPServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            host=self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2]),
        )
        try:
            response = self.server.simulator.handle(request)
        except Exception:
            logger.exception("applesim failed on %s %s", self.command, self.path)
            response = Response(500, b"INTERNAL_SERVER_ERROR")
        if response.drop:
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout was shorter than a scripted delay).
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, _RequestHandler)
        self.simulator = simulator
        self.host = address[0]
        self.port: int = self.server_address[1]  # the port bound, when 0 asked for any


def sim_server_new(
    *, host: str, port: int, state_path: str | None, control_token: str = ""
) -> SimHTTPServer:
    """A simulator bound to host:port (0 for any free port) with its state at state_path."""
    return SimHTTPServer((host, port), Simulator(SimStore(state_path), control_token=control_token))
