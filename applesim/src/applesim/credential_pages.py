"""Pages for Apple's other yearly credentials: ABM's Apps and Books section and the Push
Certificates Portal.

ABM (under /abm/, in ABM's page frame): `section#apps-and-books` lists the signed-in
organisation's locations, each row with a "Download" button that answers
`sToken_for_<location>.vpptoken`; `input[name=location_name]` + "Add Location" adds one.

The Push Certificates Portal (under /pushcert/): `input[name=apple_id]` + "Sign In"; a table of
the Apple ID's certificates (`tr[data-topic]`) with "Renew" and "Download" per row; "Create a
Certificate"; on the upload pages `input[name=request]` + "Upload", after which the certificate's
page offers "Download" (`MDM_<Vendor>_Certificate.pem`). All user text is escaped.
"""

from __future__ import annotations

import re
from html import escape

from applesim import abm
from applesim.apps_books import AppsBooks
from applesim.database import SimError
from applesim.pushcerts import PushCertificates, certificate_filename
from applesim.store import SimStore
from applesim.web import (
    Request,
    Response,
    attachment_response,
    html_response,
    redirect,
    redirect_message_html,
)

LOCATION_PATH = re.compile(r"/abm/locations/(?P<uid>\d+)/token")
CERTIFICATE_PATH = re.compile(
    r"/pushcert/certificates/(?P<topic>com\.apple\.mgmt\.[\w.-]+)(?P<action>/renew|/download)?"
)


def apps_books_section(apps_books: AppsBooks, org_id: str) -> str:
    """ABM's Settings > Payments and Billing > Apps and Books, for the overview page."""
    rows = "".join(
        f"<tr><td>{escape(location['location_name'])}</td><td>{escape(location['country'])}</td>"
        f"<td>{location['assets']}</td><td>{location['tokens']}</td>"
        f"<td>{escape(location['mdm_name'] or '-')}</td><td>"
        f'<form method="post" action="/abm/locations/{location["uid"]}/token">'
        f'<button type="submit" aria-label="Download content token for '
        f'{escape(location["location_name"])}">Download</button></form></td></tr>'
        for location in apps_books.locations(org_id)
    )
    return (
        '<section id="apps-and-books"><h2>Apps and Books</h2>'
        "<p>Content tokens: download one for a device management service. A new download "
        "leaves earlier tokens of the location valid.</p>"
        "<table><tr><th>Location</th><th>Country</th><th>Apps</th><th>Tokens downloaded</th>"
        f"<th>Managed by</th><th>Content token</th></tr>{rows}</table>"
        '<form class="inline" method="post" action="/abm/locations">'
        '<label for="location_name">New location</label>'
        '<input id="location_name" name="location_name" maxlength="100" required>'
        '<button type="submit" class="secondary">Add Location</button></form></section>'
    )


def abm_locations_handle(request: Request, store: SimStore, apps_books: AppsBooks) -> Response:
    """POST /abm/locations and POST /abm/locations/<uid>/token, for the signed-in Apple ID."""
    signed_in = store.signed_in()
    if signed_in is None:
        raise SimError(403, "SIGN_IN_REQUIRED", "Sign in first.")
    path = request.path.rstrip("/")
    if request.method == "POST" and path == "/abm/locations":
        name = str(request.form().get("location_name", ""))
        apps_books.location_create(org_id=signed_in["org_id"], location_name=name)
        return redirect("/abm/", notice=f"Added location {name.strip()}.")
    match = LOCATION_PATH.fullmatch(path)
    if request.method == "POST" and match:
        issued = apps_books.token_download(match["uid"])
        return attachment_response(issued.content, "application/octet-stream", issued.filename)
    raise SimError(404, "NOT_FOUND", "No such page.")


class PushCertPortal:
    """The Apple Push Certificates Portal's pages."""

    def __init__(self, push_certificates: PushCertificates) -> None:
        self.push_certificates = push_certificates

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except SimError as error:
            if request.method == "GET":
                content = f'<h1>Error</h1><p class="error" role="alert">{escape(error.message)}</p>'
                return html_response(self._page("Error", content), error.status)
            back = request.path if request.path.endswith(("/renew", "/create")) else "/pushcert/"
            return redirect(back, error=error.message)

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/pushcert", request.method
        if path == "/pushcert/sign-in" and method == "POST":
            self.push_certificates.sign_in(str(request.form().get("apple_id", "")))
            return redirect("/pushcert/")
        if path == "/pushcert/sign-out" and method == "POST":
            self.push_certificates.store.setting_set("pushcert_apple_id", "")
            return redirect("/pushcert/")
        apple_id = self.push_certificates.signed_in()
        if apple_id is None:
            return html_response(self._page("Sign In", _SIGN_IN, request))
        if path == "/pushcert" and method == "GET":
            return self._list(request, apple_id)
        if path == "/pushcert/create":
            if method == "POST":
                row = self.push_certificates.create(apple_id=apple_id, request=_upload(request))
                return redirect(f"/pushcert/certificates/{row['topic']}", notice="Created.")
            return self._upload_form(request, "Create a New Push Certificate", path)
        match = CERTIFICATE_PATH.fullmatch(path)
        if match is None:
            raise SimError(404, "NOT_FOUND", "No such page.")
        row = self.push_certificates.certificate(apple_id=apple_id, topic=match["topic"])
        action = match["action"]
        if action == "/renew" and method == "POST":
            self.push_certificates.renew(
                apple_id=apple_id, topic=row["topic"], request=_upload(request)
            )
            return redirect(f"/pushcert/certificates/{row['topic']}", notice="Renewed.")
        if action == "/renew":
            return self._upload_form(request, f"Renew Push Certificate {row['topic']}", path)
        if action == "/download":
            return attachment_response(
                bytes(row["pem"]), "application/x-pem-file", certificate_filename(row)
            )
        content = (
            f"<h1>Certificate</h1><section><dl><dt>Subject UID (topic)</dt>"
            f'<dd><code id="topic">{escape(row["topic"])}</code></dd>'
            f"<dt>Vendor</dt><dd>{escape(row['vendor_name'])}</dd>"
            f"<dt>Expiration date</dt><dd>{escape(row['not_after'])}</dd>"
            f"<dt>Serial number</dt><dd><code>{escape(row['serial'])}</code></dd></dl>"
            f'<p><a href="{path}/download" download>Download</a></p></section>'
            '<p><a href="/pushcert/">Back to Certificates</a></p>'
        )
        return html_response(self._page("Certificate", content, request))

    def _list(self, request: Request, apple_id: str) -> Response:
        rows = "".join(
            f'<tr data-topic="{escape(row["topic"])}"><td>Mobile Device Management</td>'
            f"<td>{escape(row['vendor_name'])}</td><td>{escape(row['not_after'])}</td>"
            f"<td><code>{escape(row['topic'])}</code></td>"
            f'<td><a href="/pushcert/certificates/{escape(row["topic"])}/renew">Renew</a> '
            f'<a href="/pushcert/certificates/{escape(row["topic"])}/download" download>'
            "Download</a></td></tr>"
            for row in self.push_certificates.certificates(apple_id)
        )
        content = (
            f"<h1>Certificates for {escape(apple_id)}</h1><section>"
            "<table><tr><th>Service</th><th>Vendor</th><th>Expiration date</th>"
            f"<th>Subject UID</th><th>Actions</th></tr>{rows}</table>"
            '<p><a href="/pushcert/create">Create a Certificate</a></p></section>'
        )
        return html_response(self._page("Certificates", content, request))

    def _upload_form(self, request: Request, title: str, action: str) -> Response:
        content = (
            f"<h1>{escape(title)}</h1><section>"
            f'<form method="post" action="{escape(action)}" enctype="multipart/form-data">'
            '<label for="request">Vendor-signed certificate signing request</label> '
            '<input type="file" id="request" name="request" required> '
            '<button type="submit">Upload</button></form></section>'
            '<p><a href="/pushcert/">Cancel</a></p>'
        )
        return html_response(self._page(title, content, request))

    def _page(self, title: str, content: str, request: Request | None = None) -> str:
        apple_id = self.push_certificates.signed_in()
        account = (
            f'<form class="inline" method="post" action="/pushcert/sign-out">'
            f"<span>{escape(apple_id)}</span>"
            '<button type="submit" class="secondary">Sign Out</button></form>'
            if apple_id
            else ""
        )
        flash = redirect_message_html(request)
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)} - Apple Push Certificates Portal</title>"
            f"<style>{abm.STYLE}</style></head><body><header>"
            f'<span class="brand">Apple Push Certificates Portal</span>{account}</header>'
            f"<main>{flash}{content}</main></body></html>"
        )


_SIGN_IN = (
    "<h1>Sign In</h1><section>"
    '<form method="post" action="/pushcert/sign-in"><label for="apple_id">Apple ID</label> '
    '<input id="apple_id" name="apple_id" type="email" required> '
    '<button type="submit">Sign In</button></form></section>'
)


def _upload(request: Request) -> bytes:
    upload = request.form().get("request")
    if isinstance(upload, str):
        upload = upload.encode()
    if not upload:
        raise SimError(400, "REQUEST_REQUIRED", "Choose the signed request file to upload.")
    return upload
