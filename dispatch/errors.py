"""Domain errors of dispatch, and their HTTP form (mapped at the edge, in the routes)."""

from __future__ import annotations

from rescue.errors import ApiError, conflict, not_found


class DispatchError(Exception):
    """A use case refused: the request conflicts with what is stored."""

    def to_api(self) -> ApiError:
        """The HTTP error of this domain error."""
        raise NotImplementedError


class ExternalIdConflict(DispatchError):
    """The same external_id was used with a different body."""

    def __init__(self, external_id: str) -> None:
        super().__init__(external_id)
        self.external_id = external_id

    def to_api(self) -> ApiError:
        """409 external_id_conflict."""
        return conflict(
            "external_id_conflict",
            f"external_id {self.external_id!r} was already used for a different alert",
        )


class IncidentNotFound(DispatchError):
    """No such incident (or not one this principal may see)."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id)
        self.incident_id = incident_id

    def to_api(self) -> ApiError:
        """404 not_found."""
        return not_found("incident", self.incident_id)


class IncidentNotOpen(DispatchError):
    """The incident was already cancelled or closed."""

    def __init__(self, incident_id: str, status: str) -> None:
        super().__init__(incident_id, status)
        self.incident_id = incident_id
        self.status = status

    def to_api(self) -> ApiError:
        """409 incident_not_open."""
        return conflict("incident_not_open", f"incident {self.incident_id!r} is {self.status}")


class OfferNotFound(DispatchError):
    """No such offer among this volunteer's offers."""

    def __init__(self, offer_id: str) -> None:
        super().__init__(offer_id)
        self.offer_id = offer_id

    def to_api(self) -> ApiError:
        """404 not_found."""
        return not_found("offer", self.offer_id)


class OfferNotOpen(DispatchError):
    """The offer was already answered, expired or cancelled."""

    def __init__(self, offer_id: str, state: str) -> None:
        super().__init__(offer_id, state)
        self.offer_id = offer_id
        self.state = state

    def to_api(self) -> ApiError:
        """409 offer_not_open."""
        return conflict(
            "offer_not_open", f"offer {self.offer_id!r} is no longer open ({self.state})"
        )


class AlreadyEngaged(DispatchError):
    """The volunteer is already engaged in another incident."""

    def to_api(self) -> ApiError:
        """409 already_engaged."""
        return conflict(
            "already_engaged",
            "you are already engaged in another incident: hand over or withdraw from it first",
        )


class OfferNotEngaged(DispatchError):
    """A status marker on an offer that is not an ongoing accepted engagement."""

    def __init__(self, offer_id: str, state: str) -> None:
        super().__init__(offer_id, state)
        self.offer_id = offer_id
        self.state = state

    def to_api(self) -> ApiError:
        """409 offer_not_engaged."""
        return conflict(
            "offer_not_engaged",
            f"offer {self.offer_id!r} is not an ongoing accepted engagement ({self.state})",
        )
