"""An Apple Business Manager look-alike: the pages an admin uses to get a server token.

Server-rendered HTML with stable names for browser tests: `select[name=apple_id]` to switch
Apple ID, `input[name=server_name]` + "Add MDM Server", `input[name=public_key]` + "Upload",
`select[name=validity_days]` + "Download Token", then "Confirm" on the warning page, which
answers `<ServerName>_Token_<date>_smime.p7m` as an attachment. The Apps and Books section
(content tokens per location) is in credential_pages.py. All user text is escaped.

Each warning page confirms one download: once its token is downloaded, Confirm is no longer
live (the page says when the download happened), and a second click would not reset the token
just saved but says to start again from Download Token, so that the warning is shown again.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from datetime import datetime
from html import escape

from applesim import inventory
from applesim.apps_books import AppsBooks
from applesim.credential_pages import abm_locations_handle, apps_books_section
from applesim.database import SimError, timestamp_parse
from applesim.store import SimStore
from applesim.web import (
    Request,
    Response,
    attachment_response,
    html_response,
    redirect,
    redirect_message_html,
)

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 -apple-system,BlinkMacSystemFont,"SF Pro Text","Helvetica Neue",
Arial,sans-serif;color:#1d1d1f;background:#f5f5f7}
header{display:flex;align-items:center;justify-content:space-between;padding:10px 24px;
background:#fff;border-bottom:1px solid #d2d2d7}
.brand{font-weight:600;font-size:17px}.layout{display:flex;min-height:calc(100vh - 56px)}
nav{width:230px;padding:20px;background:#fbfbfd;border-right:1px solid #d2d2d7}
nav h2{font-size:12px;text-transform:uppercase;color:#6e6e73;margin:18px 0 6px}
nav a{display:block;padding:5px 8px;border-radius:6px;color:#1d1d1f;text-decoration:none}
nav a.current{background:#e8e8ed}main{flex:1;padding:28px 36px;max-width:980px}
section{background:#fff;border:1px solid #d2d2d7;border-radius:12px;padding:18px 22px;
margin:0 0 18px}
h1{font-size:28px;margin:0 0 18px}h2{font-size:19px;margin:0 0 12px}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:7px 6px;
border-bottom:1px solid #e8e8ed;font-size:14px}th{color:#6e6e73;font-weight:500}
button{font:inherit;padding:6px 16px;border-radius:980px;border:0;background:#0071e3;color:#fff;
cursor:pointer}button.secondary{background:#e8e8ed;color:#1d1d1f}
input,select{font:inherit;padding:5px 8px;border:1px solid #d2d2d7;border-radius:8px}
form.inline{display:flex;gap:10px;align-items:center;margin:8px 0}
.notice{background:#e3f5e1;padding:10px 14px;border-radius:8px}
.error,.warning{background:#fff4e5;padding:10px 14px;border-radius:8px;color:#8a4b00}
dl{display:grid;grid-template-columns:180px 1fr;gap:6px 12px;margin:0}dt{color:#6e6e73}
code{font-family:ui-monospace,Menlo,monospace;font-size:13px}
"""
VALIDITY_CHOICES = (("365", "1 year"), ("30", "30 days"), ("10", "10 days"), ("1", "1 day"))
SERVER_PATH = re.compile(r"/abm/servers/(?P<server_uuid>[0-9A-F]{32})(?P<action>/[a-z/-]+)?")


class ABMPages:
    def __init__(self, store: SimStore, apps_books: AppsBooks) -> None:
        self.store = store
        self.apps_books = apps_books
        # The confirmations the warning pages carry: when each was used, None while it is not.
        self._confirmations: dict[str, datetime | None] = {}
        self._confirmations_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except SimError as error:
            if request.method == "GET":
                content = f'<h1>Error</h1><p class="error" role="alert">{escape(error.message)}</p>'
                return html_response(self._page("Error", content), error.status)
            match = SERVER_PATH.fullmatch(request.path.rstrip("/"))
            if match and error.code != "SERVER_NOT_FOUND":
                return redirect(f"/abm/servers/{match['server_uuid']}", error=error.message)
            return redirect("/abm/", error=error.message)

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if path in ("/", "/abm") and method == "GET":
            return self._overview(request)
        if method == "POST" and path == "/abm/organisations":
            return self._organisation_create(request)
        if method == "POST" and path == "/abm/sign-in":
            self.store.sign_in(str(request.form().get("apple_id", "")))
            return redirect("/abm/")
        if method == "POST" and path == "/abm/terms":
            return self._terms_set(request)
        if method == "POST" and path == "/abm/servers":
            return self._server_create(request)
        if path == "/abm/locations" or path.startswith("/abm/locations/"):
            return abm_locations_handle(request, self.store, self.apps_books)
        match = SERVER_PATH.fullmatch(path)
        if match is None:
            return html_response(self._page("Not Found", "<h1>Not Found</h1>"), 404)
        server = self.store.server(match["server_uuid"])
        signed_in = self.store.signed_in()
        if signed_in is None or signed_in["org_id"] != server["org_id"]:
            body = "<h1>Not Allowed</h1><p>This MDM server belongs to another organisation.</p>"
            return html_response(self._page("Not Allowed", body), 403)
        action = (match["action"] or "", method)
        if action == ("", "GET"):
            return self._server_page(request, server)
        if action == ("/public-key", "POST"):
            return self._public_key_upload(request, server)
        if action == ("/token", "POST"):
            return self._token_confirmation(request, server)
        if action == ("/token/confirm", "POST"):
            return self._token_download(request, server)
        if action == ("/devices", "POST"):
            count = str(request.form().get("count", "0"))
            added = inventory.devices_add(self.store, server["server_uuid"], _number(count))
            return redirect(_server_url(server), notice=f"Added {len(added)} devices.")
        return html_response(self._page("Not Found", "<h1>Not Found</h1>"), 404)

    def _page(self, title: str, content: str, request: Request | None = None) -> str:
        signed_in = self.store.signed_in()
        options = "".join(
            f'<option value="{escape(row["email"])}"'
            f"{' selected' if signed_in and row['email'] == signed_in['apple_id'] else ''}>"
            f"{escape(row['email'])} ({escape(row['org_name'])})</option>"
            for row in self.store.apple_ids()
        )
        sign_in = (
            '<form class="inline" method="post" action="/abm/sign-in">'
            '<label for="apple_id">Signed in as</label>'
            f'<select id="apple_id" name="apple_id">{options}</select>'
            '<button type="submit" class="secondary">Switch</button></form>'
            if options
            else ""
        )
        organisation = escape(signed_in["name"]) if signed_in else "No organisation"
        flash = redirect_message_html(request)
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)} - Apple Business Manager</title><style>{STYLE}</style>"
            '</head><body><header><span class="brand">Apple Business Manager</span>'
            f"{sign_in}</header>"
            f'<div class="layout"><nav><strong id="organisation-name">{organisation}</strong>'
            '<h2>Devices</h2><a class="current" href="/abm/">Management Services</a>'
            '<h2>Payments and Billing</h2><a href="/abm/#apps-and-books">Apps and Books</a></nav>'
            f"<main>{flash}{content}</main></div></body></html>"
        )

    def _overview(self, request: Request) -> Response:
        signed_in = self.store.signed_in()
        if signed_in is None:
            return html_response(self._page("Welcome", self._enrolment_form(), request))
        terms_accepted = bool(signed_in["terms_accepted"])
        terms = (
            '<section id="terms"><h2>Terms and Conditions</h2>'
            f"<p>{'Accepted' if terms_accepted else 'Not accepted: the DEP web service refuses every MDM server of this organisation until you accept them.'}</p>"  # noqa: E501
            '<form method="post" action="/abm/terms">'
            f'<input type="hidden" name="accepted" value="{"0" if terms_accepted else "1"}">'
            f'<button type="submit">{"Withdraw Terms" if terms_accepted else "Accept Terms"}'
            "</button></form></section>"
        )
        rows = "".join(
            f'<tr><td><a href="{_server_url(server)}">{escape(server["server_name"])}</a></td>'
            f"<td><code>{server['server_uuid']}</code></td><td>{server['device_count']}</td>"
            f"<td>{escape(server['admin_id']) or '-'}</td>"
            f"<td>{'Uploaded' if server['certificate'] is not None else 'Missing'}</td></tr>"
            for server in self.store.servers(signed_in["org_id"])
        )
        servers = (
            '<section id="mdm-servers"><h2>Management Services</h2>'
            "<table><tr><th>Name</th><th>Server UUID</th><th>Devices</th><th>Default admin</th>"
            f"<th>Public key</th></tr>{rows}</table>"
            '<form class="inline" method="post" action="/abm/servers">'
            '<label for="server_name">New MDM server</label>'
            '<input id="server_name" name="server_name" maxlength="100" required>'
            '<button type="submit">Add MDM Server</button></form></section>'
        )
        organisation = (
            f'<section id="organisation"><h2>{escape(signed_in["name"])}</h2><dl>'
            f"<dt>Organisation ID</dt><dd>{escape(signed_in['org_id'])}</dd>"
            f"<dt>Type</dt><dd>{escape(signed_in['org_type'])}</dd>"
            f"<dt>Email</dt><dd>{escape(signed_in['email'])}</dd></dl></section>"
        )
        apps_books = apps_books_section(self.apps_books, signed_in["org_id"])
        content = f"<h1>Management Services</h1>{organisation}{terms}{servers}{apps_books}"
        return html_response(self._page("Management Services", content, request))

    def _enrolment_form(self) -> str:
        return (
            "<h1>Welcome</h1><section><h2>Enrol your organisation</h2>"
            '<form method="post" action="/abm/organisations"><dl>'
            '<dt><label for="name">Organisation name</label></dt>'
            '<dd><input id="name" name="name" required></dd>'
            '<dt><label for="new_apple_id">Your Apple ID</label></dt>'
            '<dd><input id="new_apple_id" name="new_apple_id" type="email" required></dd>'
            '<dt><label for="org_type">Type</label></dt><dd><select id="org_type" name="org_type">'
            '<option value="org">Business</option><option value="edu">Education</option>'
            '</select></dd></dl><p><button type="submit">Enrol</button></p></form></section>'
        )

    def _organisation_create(self, request: Request) -> Response:
        form = request.form()
        self.store.organisation_create(
            name=str(form.get("name", "")),
            org_type=str(form.get("org_type", "org")),
            apple_ids=[str(form.get("new_apple_id", ""))],
        )
        return redirect("/abm/", notice="Your organisation is enrolled.")

    def _terms_set(self, request: Request) -> Response:
        signed_in = self.store.signed_in()
        if signed_in is None:
            raise SimError(403, "SIGN_IN_REQUIRED", "Sign in first.")
        accepted = request.form().get("accepted") == "1"
        self.store.terms_set(signed_in["org_id"], accepted=accepted)
        notice = "Terms and conditions accepted." if accepted else "Terms and conditions withdrawn."
        return redirect("/abm/", notice=notice)

    def _server_create(self, request: Request) -> Response:
        signed_in = self.store.signed_in()
        if signed_in is None:
            raise SimError(403, "SIGN_IN_REQUIRED", "Sign in first.")
        server_name = str(request.form().get("server_name", ""))
        server = self.store.server_create(org_id=signed_in["org_id"], server_name=server_name)
        return redirect(_server_url(server), notice=f"Added {server_name}.")

    def _server_page(self, request: Request, server: sqlite3.Row) -> Response:
        name = escape(server["server_name"])
        serials = inventory.device_serials(self.store, server["server_uuid"])
        rows = "".join(
            f"<tr><td><code>{escape(device['serial_number'])}</code></td>"
            f"<td>{escape(device['model'])}</td><td>{escape(device['os'])}</td>"
            f"<td>{escape(device['profile_status'])}</td></tr>"
            for device in (inventory.device_get(self.store, s) for s in serials[:25])
        )
        validity = "".join(f'<option value="{v}">{label}</option>' for v, label in VALIDITY_CHOICES)
        has_key = server["certificate"] is not None
        latest = self.store.server_token_latest(server["server_uuid"])
        downloaded = (
            f'<p id="last-download">Last downloaded {_when(latest["issued_at"])}'
            f" by {escape(latest['downloaded_by'])}.</p>"
            if latest is not None
            else ""
        )
        content = (
            f"<h1>{name}</h1><section><dl>"
            f'<dt>Server UUID</dt><dd><code id="server-uuid">{server["server_uuid"]}</code></dd>'
            f"<dt>Default admin</dt><dd>{escape(server['admin_id']) or '-'}</dd>"
            f"<dt>Devices</dt><dd>{len(serials)}</dd>"
            f"<dt>Public key</dt><dd>{'Uploaded' if has_key else 'Not uploaded yet'}</dd>"
            "</dl></section>"
            '<section id="public-key"><h2>Upload Public Key</h2>'
            f'<form class="inline" method="post" action="{_server_url(server)}/public-key"'
            ' enctype="multipart/form-data"><label for="public_key">Public key (.pem, .der)</label>'
            '<input type="file" id="public_key" name="public_key" accept=".pem,.der,.cer" required>'
            '<button type="submit">Upload</button></form></section>'
            '<section id="server-token"><h2>Server Token</h2>'
            f'<form class="inline" method="post" action="{_server_url(server)}/token">'
            f'<label for="validity_days">Valid for</label><select id="validity_days"'
            f' name="validity_days">{validity}</select>'
            f'<button type="submit"{"" if has_key else " disabled"}>Download Token</button>'
            f"</form>{'' if has_key else '<p>Upload a public key first.</p>'}{downloaded}"
            "</section>"
            '<section id="devices"><h2>Devices</h2>'
            f'<form class="inline" method="post" action="{_server_url(server)}/devices">'
            '<label for="count">Add devices</label>'
            '<input type="number" id="count" name="count" value="10" min="1" max="100000">'
            '<button type="submit">Add Devices</button></form>'
            "<table><tr><th>Serial number</th><th>Model</th><th>OS</th><th>Profile</th></tr>"
            f"{rows}</table></section>"
            '<p><a href="/abm/">Back to Management Services</a></p>'
        )
        return html_response(self._page(server["server_name"], content, request))

    def _public_key_upload(self, request: Request, server: sqlite3.Row) -> Response:
        certificate = request.form().get("public_key")
        if not isinstance(certificate, bytes) or not certificate:
            raise SimError(400, "PUBLIC_KEY_REQUIRED", "Choose a public key file to upload.")
        self.store.public_key_upload(server["server_uuid"], certificate)
        return redirect(_server_url(server), notice="Public key uploaded.")

    def _token_confirmation(self, request: Request, server: sqlite3.Row) -> Response:
        validity_days = _number(str(request.form().get("validity_days", "365")))
        confirmation = secrets.token_urlsafe(12)
        with self._confirmations_lock:
            self._confirmations[confirmation] = None
        content = (
            f"<h1>Download Token for {escape(server['server_name'])}</h1><section>"
            '<p class="warning" role="alert" id="reset-warning">Downloading a new server token'
            " will reset your existing one.</p>"
            f'<form class="inline" id="token-confirm" method="post"'
            f' action="{_server_url(server)}/token/confirm">'
            f'<input type="hidden" name="validity_days" value="{validity_days}">'
            f'<input type="hidden" name="confirmation" value="{confirmation}">'
            '<button type="submit">Confirm</button>'
            f'<a href="{_server_url(server)}">Cancel</a></form>'
            '<p class="notice" role="status" id="download-done" hidden></p>'
            f'<p><a href="{_server_url(server)}">Back to {escape(server["server_name"])}</a></p>'
            f"</section><script>{CONFIRM_ONCE_SCRIPT}</script>"
        )
        return html_response(self._page("Download Token", content, request))

    def _token_download(self, request: Request, server: sqlite3.Row) -> Response:
        form = request.form()
        validity_days = _number(str(form.get("validity_days", "365")))
        confirmation = str(form.get("confirmation", ""))
        with self._confirmations_lock:
            known = confirmation in self._confirmations
            used_at = self._confirmations.get(confirmation)
            if known and used_at is None:
                self._confirmations[confirmation] = self.store.now()
        if not known:
            raise SimError(
                409,
                "CONFIRMATION_REQUIRED",
                "Click Download Token and confirm the warning: a new token resets the current one.",
            )
        if used_at is not None:
            raise SimError(
                409,
                "ALREADY_DOWNLOADED",
                f"This token was already downloaded {_when(used_at)}; nothing was reset. "
                "For a new one, click Download Token again: it resets the token you downloaded.",
            )
        issued = self.store.server_token_download(
            server["server_uuid"], validity_days=validity_days
        )
        return attachment_response(issued.p7m or b"", "application/pkcs7-mime", issued.filename)


# The download answers a file, so the warning page stays: once Confirm is clicked, it is no
# longer live and the page says when the token was downloaded.
CONFIRM_ONCE_SCRIPT = """
document.getElementById("token-confirm").addEventListener("submit", (event) => {
  const form = event.target;
  setTimeout(() => {
    form.querySelector("button").disabled = true;
    form.hidden = true;
    document.getElementById("reset-warning").hidden = true;
    const done = document.getElementById("download-done");
    done.textContent = "Token downloaded at " + new Date().toLocaleTimeString() +
      ". For another one, start again from Download Token: it resets this one.";
    done.hidden = false;
  });
});
"""


def _when(moment: datetime | str) -> str:
    if isinstance(moment, str):
        moment = timestamp_parse(moment)
    return f"on {moment:%-d %b %Y} at {moment:%H:%M:%S} UTC"


def _server_url(server: sqlite3.Row) -> str:
    return f"/abm/servers/{server['server_uuid']}"


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError as error:
        raise SimError(400, "NUMBER_INVALID", f"{text!r} is not a number.") from error
