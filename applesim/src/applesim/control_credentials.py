"""Control calls for Apps and Books and the Push Certificates Portal, JSON under /_sim/ as in
control.py (which mounts these routes):

    POST /_sim/vpp/locations                     {org_id, location_name, country? "US"}
                                                  -> {uid, ...}: a location of an organisation
    GET  /_sim/vpp/locations/<uid>               {uid, org_id, location_name, country, mdm_info,
                                                  tokens: [{issued_at, expires_at, revoked,
                                                  downloaded_by}], assets}
    POST /_sim/vpp/locations/<uid>/token         {validity_days? 365, issued_at? ISO-8601}: what
                                                  Apps and Books > Download does (an Apple ID of
                                                  the organisation must be signed in); answers
                                                  the .vpptoken file; earlier tokens stay valid
    POST /_sim/vpp/locations/<uid>/mdm-info      {mdm_info: {id, name, metadata} | null}: another
                                                  MDM claims the location (null: nobody has)
    POST /_sim/vpp/locations/<uid>/assets        {count, licences? 10}: apps bought for it
    POST /_sim/vpp/tokens/revoke                 the .vpptoken file as the body: Apple revokes
                                                  it, and the service answers 9625 from then on
    POST /_sim/pushcert/vendor                   {vendor_name, team_id?} -> PEM: the MDM vendor's
                                                  private key, its vendor certificate, then the
                                                  simulated Apple WWDR and root certificates
    POST /_sim/pushcert/sign-in                  {apple_id}: signs in to the portal's pages
    POST /_sim/pushcert/certificates             {apple_id, request, topic?, validity_days?}
                                                  -> the PEM: Create (no topic: a new topic,
                                                  valid validity_days, 365 by default) or Renew
                                                  (that topic of this Apple ID)
    GET  /_sim/pushcert/certificates/<apple_id>  {certificates: [{topic, serial, not_after, ...}]}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import unquote

from applesim.apps_books import AppsBooks
from applesim.control_requests import field, json_body
from applesim.database import SimError, timestamp_parse
from applesim.pushcerts import PushCertificates, certificate_filename, certificate_json
from applesim.web import Request, Response, attachment_response, json_response


class CredentialsControl:
    def __init__(self, apps_books: AppsBooks, push_certificates: PushCertificates) -> None:
        self.apps_books = apps_books
        self.push_certificates = push_certificates
        self.routes: tuple[tuple[str, str, Callable[..., Response]], ...] = (
            ("POST", r"/_sim/vpp/locations", self.location_create),
            ("GET", r"/_sim/vpp/locations/(?P<uid>\d+)", self.location),
            ("POST", r"/_sim/vpp/locations/(?P<uid>\d+)/token", self.token_download),
            ("POST", r"/_sim/vpp/locations/(?P<uid>\d+)/mdm-info", self.mdm_info_set),
            ("POST", r"/_sim/vpp/locations/(?P<uid>\d+)/assets", self.assets_add),
            ("POST", r"/_sim/vpp/tokens/revoke", self.token_revoke),
            ("POST", r"/_sim/pushcert/vendor", self.vendor_issue),
            ("POST", r"/_sim/pushcert/sign-in", self.push_sign_in),
            ("POST", r"/_sim/pushcert/certificates", self.push_certificate_issue),
            (
                "GET",
                r"/_sim/pushcert/certificates/(?P<apple_id>[^/]+)",
                self.push_list,
            ),
        )

    def location_create(self, request: Request) -> Response:
        body = json_body(request)
        uid = self.apps_books.location_create(
            org_id=field(body, "org_id", str),
            location_name=field(body, "location_name", str),
            country=field(body, "country", str, "US"),
        )
        return json_response(self.apps_books.location_json(uid), 201)

    def location(self, request: Request, uid: str) -> Response:
        return json_response(self.apps_books.location_json(uid))

    def token_download(self, request: Request, uid: str) -> Response:
        body = json_body(request)
        issued_at: datetime | None = None
        if body.get("issued_at"):
            try:
                issued_at = timestamp_parse(field(body, "issued_at", str))
            except ValueError as error:
                raise SimError(400, "FIELD_INVALID", "issued_at must be ISO-8601.") from error
        issued = self.apps_books.token_download(
            uid, validity_days=field(body, "validity_days", int, 365), issued_at=issued_at
        )
        return attachment_response(issued.content, "application/octet-stream", issued.filename)

    def mdm_info_set(self, request: Request, uid: str) -> Response:
        mdm_info = json_body(request).get("mdm_info")
        if mdm_info is not None and not isinstance(mdm_info, dict):
            raise SimError(400, "FIELD_INVALID", "mdm_info is {id, name, metadata} or null.")
        self.apps_books.mdm_info_set(uid, mdm_info)
        return json_response(self.apps_books.location_json(uid))

    def assets_add(self, request: Request, uid: str) -> Response:
        body = json_body(request)
        self.apps_books.assets_add(
            uid, count=field(body, "count", int), licences=field(body, "licences", int, 10)
        )
        return json_response(self.apps_books.location_json(uid))

    def token_revoke(self, request: Request) -> Response:
        self.apps_books.token_revoke(request.body)
        return json_response({"revoked": True})

    def vendor_issue(self, request: Request) -> Response:
        body = json_body(request)
        bundle = self.push_certificates.vendor_issue(
            vendor_name=field(body, "vendor_name", str),
            team_id=field(body, "team_id", str, "ABCDE12345"),
        )
        return Response(200, bundle, "application/x-pem-file")

    def push_sign_in(self, request: Request) -> Response:
        apple_id = field(json_body(request), "apple_id", str)
        self.push_certificates.sign_in(apple_id)
        return json_response({"signed_in": self.push_certificates.signed_in()})

    def push_certificate_issue(self, request: Request) -> Response:
        body = json_body(request)
        apple_id = field(body, "apple_id", str)
        signed_request = field(body, "request", str).encode()
        topic = body.get("topic")
        if topic is None:
            row = self.push_certificates.create(
                apple_id=apple_id,
                request=signed_request,
                validity_days=field(body, "validity_days", int, 365),
            )
        else:
            row = self.push_certificates.renew(
                apple_id=apple_id, topic=field(body, "topic", str), request=signed_request
            )
        return attachment_response(
            bytes(row["pem"]),
            "application/x-pem-file",
            certificate_filename(row),
            201 if topic is None else 200,
        )

    def push_list(self, request: Request, apple_id: str) -> Response:
        rows = self.push_certificates.certificates(unquote(apple_id))
        return json_response({"certificates": [certificate_json(row) for row in rows]})
