# Copyright (c) mmgdkd contributors. All rights reserved.
"""The renderer's buffers and pinhole camera."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .constants import SKY, SKY_DEPTH, Color, Point


class _Canvas:
    """Colour, label and depth buffers plus a pinhole camera.

    World frame: X right, Y up, Z forward (metres); the camera sits at
    ``(0, cam_h, 0)`` and looks along +Z with a level horizon.
    """

    def __init__(self, height: int, width: int, focal: float, cx: float,
                 horizon: float, cam_h: float) -> None:
        self.h, self.w = height, width
        self.f, self.cx, self.hy, self.cam_h = focal, cx, horizon, cam_h
        self.col = np.zeros((height, width, 3), np.float32)
        self.lab = np.full((height, width), SKY, np.uint8)
        self.depth = np.full((height, width), SKY_DEPTH, np.float32)
        # Multiplicative shading applied to ground classes only (shadows).
        self.shade = np.ones((height, width), np.float32)

    # -- projection -------------------------------------------------------
    def project(self, x: float, y: float, z: float) -> Tuple[float, float]:
        return (self.cx + self.f * x / z,
                self.hy + self.f * (self.cam_h - y) / z)

    # -- z-buffered surfaces ---------------------------------------------
    def surface(self, pix: np.ndarray, depth: np.ndarray, label,
                color: np.ndarray) -> None:
        """Write a surface where it is nearer than what is already there.

        Args:
            pix (np.ndarray): Flat pixel indices the surface covers.
            depth (np.ndarray): Depth per covered pixel.
            label (int | np.ndarray): Train id(s) per covered pixel.
            color (np.ndarray): (N, 3) colour per covered pixel.
        """
        flat_depth = self.depth.reshape(-1)
        near = depth < flat_depth[pix]
        p = pix[near]
        flat_depth[p] = depth[near]
        self.lab.reshape(-1)[p] = (
            label[near] if isinstance(label, np.ndarray) else label)
        self.col.reshape(-1, 3)[p] = color[near]

    # -- sprites (painter's algorithm, far to near) -----------------------
    def _fill(self, pts: np.ndarray, label: int, color: Color,
              z: float) -> None:
        # 4 fractional bits keep thin, distant objects from jittering.
        p = np.round(np.asarray(pts, np.float64) * 16).astype(np.int32)
        p = p.reshape(1, -1, 2)
        cv2.fillPoly(self.col, p, tuple(float(c) for c in color), cv2.LINE_8,
                     4)
        cv2.fillPoly(self.lab, p, int(label), cv2.LINE_8, 4)
        cv2.fillPoly(self.depth, p, float(z), cv2.LINE_8, 4)

    def poly(self,
             pts3d: Sequence[Point],
             label: int,
             color: Color,
             z: Optional[float] = None) -> None:
        pts = [self.project(*p) for p in pts3d]
        self._fill(pts, label, color, pts3d[0][2] if z is None else z)

    def rect(self, x0: float, x1: float, y0: float, y1: float, z: float,
             label: int, color: Color) -> None:
        """Axis-aligned rectangle facing the camera at depth ``z``."""
        self.poly([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], label,
                  color)

    def disc(self,
             x: float,
             y: float,
             z: float,
             r: float,
             label: int,
             color: Color,
             thickness: float = -1) -> None:
        u, v = self.project(x, y, z)
        rad = max(self.f * r / z, 0.5)
        center = (int(round(u * 16)), int(round(v * 16)))
        radius = int(round(rad * 16))
        th = -1 if thickness < 0 else max(1, int(
            round(self.f * thickness / z)))
        cv2.circle(self.col, center, radius, tuple(float(c) for c in color),
                   th, cv2.LINE_8, 4)
        cv2.circle(self.lab, center, radius, int(label), th, cv2.LINE_8, 4)
        cv2.circle(self.depth, center, radius, float(z), th, cv2.LINE_8, 4)

    def line(self, p0: Point, p1: Point, width: float, label: int,
             color: Color) -> None:
        u0, v0 = self.project(*p0)
        u1, v1 = self.project(*p1)
        th = max(1, int(round(self.f * width / p0[2])))
        a = (int(round(u0 * 16)), int(round(v0 * 16)))
        b = (int(round(u1 * 16)), int(round(v1 * 16)))
        cv2.line(self.col, a, b, tuple(float(c) for c in color), th,
                 cv2.LINE_8, 4)
        cv2.line(self.lab, a, b, int(label), th, cv2.LINE_8, 4)
        cv2.line(self.depth, a, b, float(p0[2]), th, cv2.LINE_8, 4)

    def blob(self, circles: Sequence[Tuple[float, float, float, float]],
             label: int, base: np.ndarray, texture: np.ndarray) -> None:
        """Union of discs coloured by an image-space texture (foliage)."""
        proj = [(*self.project(x, y, z), self.f * r / z, z)
                for x, y, z, r in circles]
        x0 = int(max(0, min(u - r for u, _, r, _ in proj) - 1))
        x1 = int(min(self.w, max(u + r for u, _, r, _ in proj) + 2))
        y0 = int(max(0, min(v - r for _, v, r, _ in proj) - 1))
        y1 = int(min(self.h, max(v + r for _, v, r, _ in proj) + 2))
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for u, v, r, _ in proj:
            center = (int(round((u - x0) * 16)), int(round((v - y0) * 16)))
            cv2.circle(mask, center, int(round(max(r, 0.5) * 16)), 1, -1,
                       cv2.LINE_8, 4)
        m = mask.astype(bool)
        sl = (slice(y0, y1), slice(x0, x1))
        self.lab[sl][m] = label
        self.depth[sl][m] = proj[0][3]
        self.col[sl][m] = base[None] * texture[sl][m][:, None]
