"""The travel-time model: straight-line distance to an ETA and back.

ETA = great-circle distance x detour factor / speed, plus overheads. The numbers are defaults
drawn from published measurements; every one can be overridden per deployment.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

__all__ = ["TravelMode", "TravelModel"]


class TravelMode(enum.StrEnum):
    """How a volunteer moves."""

    WALK = "walk"
    BIKE = "bike"
    CAR = "car"


@dataclass(frozen=True, slots=True)
class TravelModel:
    """Speeds, detour factor and AED retrieval overheads used to turn distances into times.

    - detour_factor 1.4: ratio of network to straight-line distance; published urban medians
      are 1.4-1.6.
    - walk_mps 2.0: a lay responder hurrying on foot; GPS-measured medians are 2.3 m/s, 1.8 m/s
      in dense areas.
    - bike_mps 4.0: a (shared) bicycle in city traffic, about 14 km/h including junctions.
    - car_mps 6.0: deliberately low (about 22 km/h) because a car's door-to-door time in a city
      includes starting off, traffic lights, finding a place to stop and walking in from it.
    - aed_retrieval_s 20: opening the cabinet (and its alarm) and taking the unit.
    - aed_indoor_s 30: extra for a unit inside a building (entrance, corridors, a guard desk).
    - aed_per_floor_s 15: per floor above or below ground, by stairs or lift.
    """

    detour_factor: float = 1.4
    walk_mps: float = 2.0
    bike_mps: float = 4.0
    car_mps: float = 6.0
    aed_retrieval_s: float = 20.0
    aed_indoor_s: float = 30.0
    aed_per_floor_s: float = 15.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{field.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{field.name} must be finite, got {value!r}")
        if self.detour_factor < 1.0:
            raise ValueError(f"detour_factor must be >= 1, got {self.detour_factor!r}")
        for name in ("walk_mps", "bike_mps", "car_mps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("aed_retrieval_s", "aed_indoor_s", "aed_per_floor_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")

    def speed_mps(self, mode: TravelMode) -> float:
        """The speed in metres per second for a travel mode."""
        mode = TravelMode(mode)
        if mode is TravelMode.WALK:
            return self.walk_mps
        if mode is TravelMode.BIKE:
            return self.bike_mps
        return self.car_mps

    def eta_s(self, distance_m: float, mode: TravelMode = TravelMode.WALK) -> float:
        """Seconds to cover a straight-line distance, detours included, no overheads."""
        if distance_m < 0 or not math.isfinite(distance_m):
            raise ValueError(f"distance_m must be a non-negative finite number, got {distance_m!r}")
        return distance_m * self.detour_factor / self.speed_mps(mode)

    def retrieval_s(self, *, indoor: bool | None, level: int | None) -> float:
        """Seconds to collect an AED once there.

        An AED whose indoor flag is unknown is counted as indoor: most public units in China are
        inside buildings, and an optimistic ETA misleads the planner more than a cautious one.
        An unknown level counts as ground level.
        """
        seconds = self.aed_retrieval_s
        if indoor is None or indoor:
            seconds += self.aed_indoor_s
        if level:
            seconds += self.aed_per_floor_s * abs(level)
        return seconds

    def aed_route_eta_s(
        self,
        *,
        to_aed_m: float,
        aed_to_patient_m: float,
        mode: TravelMode = TravelMode.WALK,
        indoor: bool | None = None,
        level: int | None = None,
    ) -> float:
        """Seconds for a volunteer to go to an AED, collect it and bring it to the patient."""
        return (
            self.eta_s(to_aed_m, mode)
            + self.retrieval_s(indoor=indoor, level=level)
            + self.eta_s(aed_to_patient_m, mode)
        )

    def reach_m(
        self,
        budget_s: float,
        mode: TravelMode = TravelMode.WALK,
        overhead_s: float = 0.0,
    ) -> float:
        """The farthest straight-line distance coverable within budget_s after overhead_s.

        The exact inverse of eta_s: eta_s(reach_m(t, mode), mode) == t. Zero when the overhead
        uses up the budget.
        """
        remaining = budget_s - overhead_s
        if not remaining > 0:  # also catches NaN
            return 0.0
        return remaining * self.speed_mps(mode) / self.detour_factor
