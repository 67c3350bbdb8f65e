"""The embedded Qingdao demo: SYNTHETIC data, generated deterministically.

Qingdao's real inventory (1,983 AEDs) and its roster (about 110,000 certified volunteers) are
not public. This package generates a stand-in of the same size inside the real district land
boundaries, weighted toward where people work (business districts, industrial parks, transit),
with a fixed seed and fixed ids so that loading it twice changes nothing. Nothing in it
describes a real device or a real person; see README.md here for how it is made and how to
import a real inventory instead.
"""

from rescue.demo.aeds import DemoAed, generate_aeds
from rescue.demo.constants import (
    AED_COUNT,
    DEMO_SEED,
    VOLUNTEER_COUNT,
    aed_id,
    volunteer_id,
    volunteer_index,
)
from rescue.demo.loader import (
    DemoCounts,
    DemoReport,
    demo_counts,
    demo_loaded,
    generate_demo,
    load_demo,
)
from rescue.demo.positions import volunteer_anchor, volunteer_anchors, volunteer_day_position
from rescue.demo.volunteers import DemoVolunteer, generate_volunteers, home_districts

__all__ = [
    "AED_COUNT",
    "DEMO_SEED",
    "VOLUNTEER_COUNT",
    "DemoAed",
    "DemoCounts",
    "DemoReport",
    "DemoVolunteer",
    "aed_id",
    "demo_counts",
    "demo_loaded",
    "generate_aeds",
    "generate_demo",
    "generate_volunteers",
    "home_districts",
    "load_demo",
    "volunteer_anchor",
    "volunteer_anchors",
    "volunteer_day_position",
    "volunteer_id",
    "volunteer_index",
]
