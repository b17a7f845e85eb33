# Copyright (c) mmgdkd contributors. All rights reserved.
"""Noise and random-choice helpers of the renderer (NumPy/OpenCV)."""
from typing import Sequence, Tuple

import cv2
import numpy as np


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int],
                  cells: Tuple[int, int]) -> np.ndarray:
    """Zero-mean, roughly unit-variance value noise in image space."""
    grid = rng.standard_normal((cells[0] + 1, cells[1] + 1)).astype(np.float32)
    return cv2.resize(
        grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _cell_value(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Random value per integer lattice cell (u, v): tiles, windows, ...

    ``table`` is square with a power-of-two side, so wrapping is a mask.
    """
    m = table.shape[0] - 1
    i = np.floor(u).astype(np.int32) & m
    j = np.floor(v).astype(np.int32) & m
    return table[i, j]


def _lattice_noise(table: np.ndarray, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """Bilinear value noise on a world-space lattice (textures that shrink
    with distance, unlike image-space noise)."""
    m = table.shape[0] - 1
    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = u - u0
    fv = v - v0
    # Smoothstep hides the lattice.
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    i0 = u0.astype(np.int32) & m
    j0 = v0.astype(np.int32) & m
    i1 = (i0 + 1) & m
    j1 = (j0 + 1) & m
    top = table[i0, j0] + (table[i0, j1] - table[i0, j0]) * fv
    bottom = table[i1, j0] + (table[i1, j1] - table[i1, j0]) * fv
    return top + (bottom - top) * fu


def _jitter(rng: np.random.Generator, color: Sequence[float],
            amount: float) -> np.ndarray:
    return np.clip(
        np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3), 0,
        255).astype(np.float32)


def _choice(rng: np.random.Generator, items: Sequence) -> object:
    return items[int(rng.integers(len(items)))]
