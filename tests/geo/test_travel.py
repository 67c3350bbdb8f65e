"""The travel-time model."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.travel import TravelMode, TravelModel

MODEL = TravelModel()


def test_defaults() -> None:
    assert (MODEL.detour_factor, MODEL.walk_mps, MODEL.bike_mps, MODEL.car_mps) == (
        1.4,
        2.0,
        4.0,
        6.0,
    )
    assert (MODEL.aed_retrieval_s, MODEL.aed_indoor_s, MODEL.aed_per_floor_s) == (20, 30, 15)


def test_speed_per_mode() -> None:
    assert MODEL.speed_mps(TravelMode.WALK) == 2.0
    assert MODEL.speed_mps(TravelMode.BIKE) == 4.0
    assert MODEL.speed_mps(TravelMode.CAR) == 6.0
    assert MODEL.speed_mps(TravelMode("bike")) == 4.0
    assert [m.value for m in TravelMode] == ["walk", "bike", "car"]


def test_eta() -> None:
    assert MODEL.eta_s(1000) == pytest.approx(700.0)  # 1000 m * 1.4 / 2 m/s
    assert MODEL.eta_s(1000, TravelMode.BIKE) == pytest.approx(350.0)
    assert MODEL.eta_s(600, TravelMode.CAR) == pytest.approx(140.0)
    assert MODEL.eta_s(0) == 0.0
    with pytest.raises(ValueError, match="distance_m"):
        MODEL.eta_s(-1)


def test_five_minute_walk_reaches_about_430_m() -> None:
    assert MODEL.reach_m(300) == pytest.approx(428.571, abs=1e-3)
    assert MODEL.reach_m(300, TravelMode.BIKE) == pytest.approx(857.143, abs=1e-3)


def test_reach_with_overhead() -> None:
    assert MODEL.reach_m(300, TravelMode.WALK, overhead_s=20) == pytest.approx(400.0)
    assert MODEL.reach_m(300, overhead_s=300) == 0.0
    assert MODEL.reach_m(300, overhead_s=301) == 0.0
    assert MODEL.reach_m(-5) == 0.0


def test_retrieval() -> None:
    assert MODEL.retrieval_s(indoor=False, level=0) == 20
    assert MODEL.retrieval_s(indoor=False, level=None) == 20
    assert MODEL.retrieval_s(indoor=True, level=0) == 50
    assert MODEL.retrieval_s(indoor=True, level=3) == 95
    assert MODEL.retrieval_s(indoor=True, level=-2) == 80  # basement: abs(level)
    assert MODEL.retrieval_s(indoor=None, level=None) == 50  # unknown counts as indoor


def test_aed_route() -> None:
    eta = MODEL.aed_route_eta_s(
        to_aed_m=100, aed_to_patient_m=200, mode=TravelMode.WALK, indoor=True, level=2
    )
    assert eta == pytest.approx(70 + 20 + 30 + 30 + 140)
    bike = MODEL.aed_route_eta_s(
        to_aed_m=400, aed_to_patient_m=400, mode=TravelMode.BIKE, indoor=False, level=None
    )
    assert bike == pytest.approx(140 + 20 + 140)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("detour_factor", 0.99),
        ("walk_mps", 0.0),
        ("bike_mps", -1.0),
        ("car_mps", math.nan),
        ("aed_retrieval_s", -0.1),
        ("aed_indoor_s", -1.0),
        ("aed_per_floor_s", math.inf),
    ],
)
def test_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TravelModel(**{field: value})


def test_zero_overheads_and_no_detour_are_allowed() -> None:
    model = TravelModel(detour_factor=1.0, aed_retrieval_s=0, aed_indoor_s=0, aed_per_floor_s=0)
    assert model.eta_s(100) == 50.0
    assert model.retrieval_s(indoor=True, level=5) == 0


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODEL.walk_mps = 3.0  # type: ignore[misc]


models = st.builds(
    TravelModel,
    detour_factor=st.floats(min_value=1.0, max_value=3.0),
    walk_mps=st.floats(min_value=0.5, max_value=4.0),
    bike_mps=st.floats(min_value=1.0, max_value=10.0),
    car_mps=st.floats(min_value=2.0, max_value=30.0),
)


@given(
    model=models,
    budget=st.floats(min_value=0, max_value=3600),
    mode=st.sampled_from(list(TravelMode)),
)
def test_reach_is_the_inverse_of_eta(model: TravelModel, budget: float, mode: TravelMode) -> None:
    reach = model.reach_m(budget, mode)
    assert model.eta_s(reach, mode) == pytest.approx(budget, rel=1e-12, abs=1e-9)


@given(
    model=models,
    budget=st.floats(min_value=0, max_value=3600),
    overhead=st.floats(min_value=0, max_value=600),
    mode=st.sampled_from(list(TravelMode)),
)
def test_reach_with_overhead_spends_the_budget_exactly(
    model: TravelModel, budget: float, overhead: float, mode: TravelMode
) -> None:
    reach = model.reach_m(budget, mode, overhead_s=overhead)
    if overhead >= budget:
        assert reach == 0.0
    else:
        assert model.eta_s(reach, mode) + overhead == pytest.approx(budget, rel=1e-12, abs=1e-9)


@given(distance=st.floats(min_value=0, max_value=1e6), mode=st.sampled_from(list(TravelMode)))
def test_eta_of_reach_round_trip_from_distance(distance: float, mode: TravelMode) -> None:
    assert MODEL.reach_m(MODEL.eta_s(distance, mode), mode) == pytest.approx(
        distance, rel=1e-12, abs=1e-9
    )
