"""Admin > Apple Credentials: every yearly Apple credential of every kind, soonest first."""

from __future__ import annotations

import csv

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header

from dep_accounts.links import portal_url
from dep_accounts.services.credentials import credentials_all
from dep_accounts.views.access import viewer_required

CSV_COLUMNS = ("Kind", "Name", "Expires", "Days left", "State", "Apple ID", "URL")
# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection"):
# names come from Apple and from admins, so such a cell is written as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@viewer_required
def credentials(request: HttpRequest) -> HttpResponse:
    return render(request, "dep_accounts/credentials.html", {"rows": credentials_all()})


@viewer_required
def credentials_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename="apple-credentials.csv"
    )
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in credentials_all():
        writer.writerow(
            [
                row.kind_label,
                spreadsheet_safe(row.name),
                row.expires_at.isoformat() if row.expires_at else "",
                "" if row.days_left is None else row.days_left,
                row.state_label,
                spreadsheet_safe(row.apple_id),
                portal_url(row.detail_url),
            ]
        )
    return response
