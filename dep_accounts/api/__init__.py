"""The JSON API under /api/v1/: DEP accounts, server token upload, sync and the audit log.

Authenticated by per-user API tokens only (`Authorization: Bearer mdmp_…`), never by the
session cookie; described by the OpenAPI document in `openapi.py`.
"""
