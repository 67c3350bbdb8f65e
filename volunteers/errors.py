"""Domain errors of the volunteers package (routes.py maps them to HTTP errors)."""

from __future__ import annotations


class VolunteerError(Exception):
    """Base of this package's domain errors; `code` is the API's error code."""

    code = "volunteer_error"


class VolunteerNotFound(VolunteerError):
    """No volunteer has this id."""

    code = "not_found"

    def __init__(self, volunteer_id: str) -> None:
        super().__init__(f"volunteer {volunteer_id!r} does not exist")
        self.volunteer_id = volunteer_id


class DuplicateCertificate(VolunteerError):
    """Another volunteer already holds this certificate number."""

    code = "duplicate_certificate"

    def __init__(self, number: str) -> None:
        super().__init__(f"certificate number {number!r} already belongs to another volunteer")
        self.number = number


class InvalidCertificateDates(VolunteerError):
    """A certificate would expire before it was issued."""

    code = "invalid_input"
    field = "certificate.expires_on"

    def __init__(self) -> None:
        super().__init__("must not be before certificate.issued_on")


class Suspended(VolunteerError):
    """A suspended volunteer may not go on duty."""

    code = "suspended"

    def __init__(self) -> None:
        super().__init__("this volunteer is suspended and may not go on duty")


class CertificateExpired(VolunteerError):
    """A volunteer whose certificate has expired may not go on duty."""

    code = "certificate_expired"

    def __init__(self, expires_on: str) -> None:
        super().__init__(f"the CPR/AED certificate expired on {expires_on}; renew it first")


class NotOnDuty(VolunteerError):
    """A position update from a volunteer who is not checked in."""

    code = "not_on_duty"

    def __init__(self) -> None:
        super().__init__("not on duty: check in with PUT /v1/me/duty first")
