"""A grid of precomputed point-in-geometry answers, so most point queries are one lookup.

Each square cell is classified once against a geometry: INSIDE (every point of the cell
intersects the geometry), OUTSIDE (none does) or MIXED (the boundary passes through it). A point
in an INSIDE or OUTSIDE cell needs no geometry test; only MIXED cells fall back to the exact
prepared test. Cells are classified coarse to fine: a coarse cell that is wholly inside or
outside settles all of its fine cells at once, so only cells near the boundary are tested at
the finest size (a few thousand box predicates for a city at 0.01°, tens of milliseconds).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import shapely  # type: ignore[import-untyped, unused-ignore]
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry  # type: ignore[import-untyped, unused-ignore]

__all__ = ["INSIDE", "MIXED", "OUTSIDE", "CellGrid"]

OUTSIDE: Final = 0
INSIDE: Final = 1
MIXED: Final = 2

# Cell boxes are classified widened by this much (~0.1 mm), so that a point whose computed
# cell index is off by one through float rounding at a cell edge still lies in the box its
# cell was classified with.
_EPS = 1e-9
# Coarse levels above the finest: cells of 2**k fine cells on a side, k = _LEVELS .. 0.
_LEVELS = 3
# A bound on memory and start-up time for an unusually large area: the step grows instead.
_MAX_CELLS = 4_000_000


class CellGrid:
    """Square cells of `step` degrees covering bounds (min_x, min_y, max_x, max_y), row-major."""

    __slots__ = ("cols", "inv_step", "rows", "step", "x0", "y0")

    def __init__(self, bounds: tuple[float, float, float, float], step: float) -> None:
        min_x, min_y, max_x, max_y = bounds
        if not all(math.isfinite(v) for v in bounds) or min_x > max_x or min_y > max_y:
            raise ValueError(f"a grid needs finite bounds, not {bounds!r}")
        if not step > 0:
            raise ValueError("the grid step must be positive")
        step = max(step, math.sqrt((max_x - min_x) * (max_y - min_y) / _MAX_CELLS))
        self.x0 = min_x
        self.y0 = min_y
        self.step = step
        self.inv_step = 1.0 / step
        # The same expression as index(): a point at max_x or max_y lands in the last cell.
        self.cols = int((max_x - min_x) * self.inv_step) + 1
        self.rows = int((max_y - min_y) * self.inv_step) + 1

    def index(self, x: float, y: float) -> int:
        """The cell holding a point within the bounds (not checked: the caller has)."""
        return int((y - self.y0) * self.inv_step) * self.cols + int((x - self.x0) * self.inv_step)

    def classify(self, geometry: BaseGeometry) -> NDArray[np.uint8]:
        """INSIDE, OUTSIDE or MIXED for every cell (flat, row-major) against the geometry.

        The geometry should be prepared (shapely.prepare): every box predicate uses it.
        """
        codes = self._classify_block(geometry, 0, 0, self.cols, self.rows)
        return codes.ravel()

    def classify_within(
        self, geometry: BaseGeometry, bounds: tuple[float, float, float, float]
    ) -> NDArray[np.uint8]:
        """classify(), testing only the cells that meet `bounds` (the geometry's own bounds):
        every other cell is OUTSIDE."""
        min_x, min_y, max_x, max_y = bounds
        codes = np.full((self.rows, self.cols), OUTSIDE, dtype=np.uint8)
        if not all(math.isfinite(v) for v in bounds):
            return codes.ravel()  # an empty geometry
        # One cell of margin each side: a box is widened by _EPS and may reach a neighbour.
        c0 = max(int((min_x - self.x0) * self.inv_step) - 1, 0)
        r0 = max(int((min_y - self.y0) * self.inv_step) - 1, 0)
        c1 = min(int((max_x - self.x0) * self.inv_step) + 2, self.cols)
        r1 = min(int((max_y - self.y0) * self.inv_step) + 2, self.rows)
        if c0 < c1 and r0 < r1:
            codes[r0:r1, c0:c1] = self._classify_block(geometry, c0, r0, c1 - c0, r1 - r0)
        return codes.ravel()

    def _classify_block(
        self, geometry: BaseGeometry, col0: int, row0: int, cols: int, rows: int
    ) -> NDArray[np.uint8]:
        """Codes of the (rows, cols) block of cells from (col0, row0), coarse to fine."""
        codes = np.full((1, 1), MIXED, dtype=np.uint8)
        for level in range(_LEVELS, -1, -1):
            factor = 1 << level
            level_rows, level_cols = -(-rows // factor), -(-cols // factor)
            if level < _LEVELS:  # each coarse cell's code becomes its 2 x 2 children's
                codes = np.repeat(np.repeat(codes, 2, axis=0), 2, axis=1)
                codes = codes[:level_rows, :level_cols]
            else:
                codes = np.full((level_rows, level_cols), MIXED, dtype=np.uint8)
            r, c = np.nonzero(codes == MIXED)
            if r.size == 0:
                break
            size = factor * self.step
            left = self.x0 + (col0 + c * factor) * self.step
            bottom = self.y0 + (row0 + r * factor) * self.step
            boxes = shapely.box(
                left - _EPS, bottom - _EPS, left + size + _EPS, bottom + size + _EPS
            )
            inside = shapely.contains(geometry, boxes)
            outside = shapely.disjoint(geometry, boxes)
            codes[r, c] = np.where(inside, INSIDE, np.where(outside, OUTSIDE, MIXED))
        if level > 0:  # settled early: spread the coarse codes to the fine cells
            codes = np.repeat(np.repeat(codes, 1 << level, axis=0), 1 << level, axis=1)
        return codes[:rows, :cols]
