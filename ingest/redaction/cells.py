"""The pixelation, one function for a video frame's planes and a photo's pixels.

A picture of width × height pixels is divided into (width // block) × (height // block) cells on its own grid (the
cells share out any remainder evenly, so that the grid covers the picture); inside a region every pixel takes the
mean colour of its cell, taken from the original picture, so that what was inside a cell is averaged away and cannot
be recovered. Pixels outside every region are not touched. A video's chroma planes (half the size in 4:2:0) are
divided into the same number of cells as its luma plane, and a region covers every chroma sample of its pixels.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

import numpy as np

__all__ = ["Rect", "cell_edges", "cells_across", "pixelate_in_place"]

Rect = tuple[int, int, int, int]  # left, top, right, bottom (pixels of the plane, right and bottom excluded)


def cells_across(size: int, block: int) -> int:
    """How many cells of about *block* pixels a side of *size* pixels is divided into. Pure."""
    return max(1, size // block)


def cell_edges(size: int, cells: int) -> list[int]:
    """The edges of *cells* cells sharing a side of *size* pixels (cells + 1 numbers from 0 to size). Pure."""
    return [round(n * size / cells) for n in range(cells + 1)]


def pixelate_in_place(plane: np.ndarray, rects: Iterable[Rect], xs: list[int], ys: list[int]) -> None:
    """Pixelate *plane* (height × width, or height × width × channels, uint8) inside each of *rects* on the grid
    whose column edges are *xs* and row edges *ys*. Every cell's mean is taken before anything is written, so
    regions that overlap give the same colours whatever their order."""
    height, width = plane.shape[:2]
    fills: list[tuple[int, int, int, int, np.ndarray]] = []
    for left, top, right, bottom in rects:
        left, top, right, bottom = max(0, left), max(0, top), min(width, right), min(height, bottom)
        if right <= left or bottom <= top:
            continue
        r0, r1 = bisect_right(ys, top) - 1, bisect_left(ys, bottom)
        c0, c1 = bisect_right(xs, left) - 1, bisect_left(xs, right)
        y0, x0 = ys[r0], xs[c0]
        area = plane[y0:ys[r1], x0:xs[c1]]
        heights = np.diff(ys[r0:r1 + 1])
        widths = np.diff(xs[c0:c1 + 1])
        sums = np.add.reduceat(np.add.reduceat(area, np.asarray(ys[r0:r1]) - y0, axis=0, dtype=np.uint32),
                               np.asarray(xs[c0:c1]) - x0, axis=1, dtype=np.uint32)
        counts = np.outer(heights, widths).reshape(sums.shape[:2] + (1,) * (plane.ndim - 2))
        means = np.rint(sums / counts).astype(plane.dtype)
        cells = np.repeat(np.repeat(means, heights, axis=0), widths, axis=1)
        fills.append((left, top, right, bottom, cells[top - y0:bottom - y0, left - x0:right - x0]))
    for left, top, right, bottom, fill in fills:
        plane[top:bottom, left:right] = fill
