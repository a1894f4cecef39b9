"""The one base of the portal's domain errors."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused something; `message` tells the admin what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
