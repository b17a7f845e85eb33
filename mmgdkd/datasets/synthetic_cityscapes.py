# Copyright (c) mmgdkd contributors. All rights reserved.
"""Procedural street scenes written in the Cityscapes on-disk layout.

The scenes stand in for Cityscapes wherever the real data set cannot be used
(the test suite, ``make demo`` on a laptop). They are rendered with a small
pinhole camera over a flat street so that every class keeps a plausible,
perspective-consistent size, and they keep some of the ambiguity that makes
distillation interesting: road and sidewalk share greys, vegetation and
terrain share greens, walls share the building palettes, and lighting,
haze, shadows, blur and noise change from image to image.

Only NumPy and OpenCV are needed; nothing here imports torch or MMSeg.

Example:
    >>> from mmgdkd.datasets.synthetic_cityscapes import generate_cityscapes
    >>> info = generate_cityscapes('data/synthetic_cityscapes', num_train=200)

The result is read by ``mmseg.datasets.CityscapesDataset`` with
``data_prefix=dict(img_path='leftImg8bit/train',
seg_map_path='gtFine/train')``.
"""
import argparse
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ['CLASS_NAMES', 'generate_cityscapes']

#: The 19 Cityscapes classes in train-id order (as ``CityscapesDataset``).
CLASS_NAMES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
               'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
               'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
               'bicycle')

# Train ids used by the renderer.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK = range(8, 15)
BICYCLE = 18
IGNORE = 255

# Bump whenever the rendering changes, so cached trees are regenerated.
GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'
# Val images use their own index range, so they do not change with num_train.
VAL_INDEX_OFFSET = 50000
# Cityscapes annotates the 20th frame of every snippet.
FRAME_ID = 19
# Depth stored for sky pixels (metres); anything nearer is a surface.
SKY_DEPTH = 1e6

Color = Tuple[float, float, float]
Point = Tuple[float, float, float]  # world (X, Y, Z) in metres


# ---------------------------------------------------------------------------
# noise helpers
# ---------------------------------------------------------------------------
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


# Palettes (RGB). The overlaps between classes are deliberate.
_BUILDING_COLORS = (
    (178, 164, 140), (132, 130, 128), (150, 88, 68), (200, 198, 190),
    (96, 94, 98), (165, 150, 120), (120, 110, 100))
_CAR_COLORS = (
    (225, 225, 225), (30, 30, 34), (160, 162, 166), (95, 97, 100),
    (170, 30, 30), (30, 50, 140), (25, 35, 70), (60, 90, 60), (200, 170, 40),
    (120, 20, 30))
_TRUCK_COLORS = ((230, 230, 228), (200, 200, 205), (150, 40, 35),
                 (40, 70, 130))
_CLOTHES_COLORS = (
    (30, 30, 35), (60, 60, 70), (40, 50, 90), (120, 30, 30), (200, 200, 200),
    (90, 70, 50), (50, 80, 60), (150, 120, 90), (20, 60, 120), (170, 160, 60))
_SKIN_COLORS = ((230, 190, 160), (200, 150, 120), (150, 100, 70),
                (100, 70, 50))


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------
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


class _SceneRenderer:
    """Renders one street scene from a dedicated random generator."""

    def __init__(self, rng: np.random.Generator, height: int,
                 width: int) -> None:
        # Layout and colours come from ``rng``; per-pixel noise from its own
        # stream, so a scene is the same at every resolution (same aspect).
        self.rng = rng
        tex = np.random.default_rng(rng.integers(2**63))
        self.tex_rng = tex
        self.h, self.w = height, width
        r = rng
        focal = width * r.uniform(0.9, 1.15)
        self.c = _Canvas(
            height,
            width,
            focal,
            cx=width * (0.5 + r.uniform(-0.07, 0.07)),
            horizon=height * r.uniform(0.36, 0.47) + 0.37,
            cam_h=r.uniform(1.25, 1.6))
        # Pixel centres.
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.xs, self.ys = xs + 0.5, ys + 0.5
        # Lattice tables for world-space textures.
        self.tab = r.random((4, 64, 64)).astype(np.float32)
        # Image-space textures shared by several surfaces. Cell counts are
        # fixed so that blotches scale with the image.
        shape = (height, width)
        self.fine = tex.standard_normal(shape, dtype=np.float32)
        self.mid = _smooth_noise(tex, shape, (min(height, 22), min(width, 43)))
        self.coarse = _smooth_noise(tex, shape, (3, 6))
        detail = _smooth_noise(tex, shape, (min(height, 43), min(width, 86)))
        self.foliage = np.clip(
            1 + 0.22 * self.mid + 0.16 * self.fine + 0.1 * detail, 0.35,
            1.8).astype(np.float32)

        # Street layout (metres).
        self.road_l = r.uniform(3.0, 7.5)
        self.road_r = r.uniform(3.0, 7.5)
        self.verge_l = r.uniform(0.8, 2.2) if r.random() < 0.3 else 0.0
        self.verge_r = r.uniform(0.8, 2.2) if r.random() < 0.3 else 0.0
        self.walk_l = r.uniform(2.5, 5.5)
        self.walk_r = r.uniform(2.5, 5.5)
        self.facade_l = self.road_l + self.verge_l + self.walk_l
        self.facade_r = self.road_r + self.verge_r + self.walk_r
        self.far = r.uniform(60.0, 110.0)

        # Shared colours.
        self.road_grey = r.uniform(72, 112)
        self.road_col = _jitter(
            r, (self.road_grey, self.road_grey - 2, self.road_grey + 4), 6)
        walk_grey = self.road_grey + r.uniform(-8, 42)
        if r.random() < 0.3:  # brick pavers
            self.walk_col = _jitter(
                r, (walk_grey + 25, walk_grey - 10, walk_grey - 20), 8)
        else:
            self.walk_col = _jitter(r, (walk_grey, walk_grey, walk_grey - 3),
                                    6)
        if r.random() < 0.3:  # dry grass
            self.terrain_col = _jitter(r, (128, 122, 82), 15)
        else:
            self.terrain_col = _jitter(r, (96, 124, 66), 15)
        self.veg_col = _jitter(r, (62, 92, 42), 14)
        self.sky_clear = r.random() < 0.6

    # -- background -------------------------------------------------------
    def sky(self) -> None:
        r, c = self.rng, self.c
        if self.sky_clear:
            top = _jitter(r, (70, 120, 190), 20)
            low = _jitter(r, (175, 198, 225), 15)
        else:
            top = _jitter(r, (165, 170, 178), 20)
            low = _jitter(r, (212, 214, 216), 12)
        # The gradient only depends on the row.
        t = np.clip(self.ys[:, :1] / max(c.hy, 1.0), 0, 1)[..., None]
        grad = top * (1 - t) + low * t
        amount = r.uniform(0.1, 0.6) if self.sky_clear else r.uniform(0, 0.2)
        clouds = np.clip((self.coarse * 0.8 + 0.3 * self.mid) * amount, 0, 1)
        c.col[:] = grad + (235 - grad) * clouds[..., None]

    def ground(self) -> None:
        r, c = self.rng, self.c
        # Only rows below the horizon can show the ground plane.
        row0 = int(min(max(np.floor(c.hy), 0), self.h))
        xs = self.xs[row0:].reshape(-1)
        ys = self.ys[row0:].reshape(-1)
        pix = np.arange(row0 * self.w, self.h * self.w)
        dy = np.maximum(ys - c.hy, 1e-3)
        z = np.minimum(c.f * c.cam_h / dy, 1e4)
        keep = z < self.far
        pix, xs, z = pix[keep], xs[keep], z[keep]
        x = (xs - c.cx) * z / c.f
        # Lateral bands: road | verge | sidewalk | yard (seen in gaps).
        lab = np.full(x.shape, TERRAIN, np.uint8)
        walk_l = -self.road_l - self.verge_l
        walk_r = self.road_r + self.verge_r
        lab[(x > -self.facade_l) & (x <= walk_l)] = SIDEWALK
        lab[(x < self.facade_r) & (x >= walk_r)] = SIDEWALK
        lab[(x > -self.road_l) & (x < self.road_r)] = ROAD
        # Some yards behind the facade line are paved.
        if r.random() < 0.4:
            lab[x < -self.facade_l] = SIDEWALK
        if r.random() < 0.4:
            lab[x > self.facade_r] = SIDEWALK
        is_road = lab == ROAD
        is_walk = lab == SIDEWALK
        is_grass = lab == TERRAIN

        col = np.empty(x.shape + (3, ), np.float32)
        fade = np.clip(1.0 - z / 35.0, 0, 1)  # fine detail dies with distance
        tab = self.tab

        # Asphalt: fine grain, large stains, repaired patches.
        xr, zr, fr = x[is_road], z[is_road], fade[is_road]
        road = (1 + 0.07 *
                (_lattice_noise(tab[0], xr / 0.4, zr / 0.4) - 0.5) * fr +
                0.18 * (_lattice_noise(tab[1], xr / 5, zr / 7) - 0.5))
        patch = _cell_value(tab[2], xr / 3.0 + 0.5, zr / 5.0) > 0.88
        road[patch] *= 0.82
        col_road = self.road_col * road[:, None]
        # Lane markings, still labelled road.
        paint = np.zeros(xr.shape, bool)
        lane_w = r.uniform(2.9, 3.6)
        k = np.arange(-6, 7) * lane_w + r.uniform(-0.3, 0.3)
        lanes = [v for v in k if -self.road_l + 1 < v < self.road_r - 1]
        dash = (zr / r.uniform(6, 12) + r.random()) % 1.0 < r.uniform(0.3, 0.6)
        for v in lanes:
            paint |= (np.abs(xr - v) < 0.07) & dash
        if r.random() < 0.7:  # solid edge lines
            paint |= np.abs(xr + self.road_l - 0.4) < 0.07
            paint |= np.abs(xr - self.road_r + 0.4) < 0.07
        if r.random() < 0.35:  # zebra crossing
            z0 = r.uniform(8, 25)
            paint |= ((zr > z0) & (zr < z0 + r.uniform(3, 5)) &
                      ((xr / 0.6) % 1.0 < 0.5))
        wear = 0.75 + 0.25 * _lattice_noise(tab[3], xr[paint] / 0.5,
                                            zr[paint] / 0.5)
        col_road[paint] = (np.float32(r.uniform(190, 230)) * wear)[:, None]
        col[is_road] = col_road

        # Sidewalk: per-tile brightness, grout lines and a bright curb.
        tile = r.uniform(0.3, 0.7)
        xw, zw, fw = x[is_walk], z[is_walk], fade[is_walk]
        u, v = xw / tile, zw / tile
        walk = 1 + 0.14 * (_cell_value(tab[0], u, v) - 0.5) * (0.4 + fw)
        grout = ((u % 1.0 < 0.09) | (v % 1.0 < 0.09)) & (zw < 30)
        walk[grout] *= 1 - 0.25 * fw[grout]
        curb = (np.abs(xw - walk_l) < 0.22) | (np.abs(xw - walk_r) < 0.22)
        walk[curb] *= 1.2
        col[is_walk] = self.walk_col * walk[:, None]

        # Grass: smoother than foliage, same family of greens.
        xg, zg, fg = x[is_grass], z[is_grass], fade[is_grass]
        grass = (1 + 0.16 *
                 (_lattice_noise(tab[1], xg / 0.6, zg / 0.6) - 0.5) *
                 (0.3 + fg) + 0.2 *
                 (_lattice_noise(tab[2], xg / 4, zg / 4) - 0.5) +
                 0.04 * self.fine.reshape(-1)[pix[is_grass]])
        col[is_grass] = self.terrain_col * grass[:, None]
        c.surface(pix, z, lab, col)

        # Building shadow over part of the street (applied in finish()).
        if r.random() < 0.5:
            side = -1 if r.random() < 0.5 else 1
            x_edge = side * r.uniform(-2, 6) + r.uniform(-0.15, 0.15) * z
            shadow = (x < x_edge) if side < 0 else (x > x_edge)
            c.shade.reshape(-1)[pix[shadow]] = r.uniform(0.5, 0.7)
            self.shadow_side = side
        else:
            self.shadow_side = 0

    def _segments(self) -> List[dict]:
        """Blocks along one side of the street: building, wall, fence, gap."""
        r = self.rng
        segs, z = [], r.uniform(-15, 0)
        while z < self.far:
            p = r.random()
            kind = (0 if p < 0.68 else 3 if p < 0.86 else 1 if p < 0.94 else 2)
            if kind == 0:  # building
                length, height = r.uniform(8, 28), r.uniform(6, 28)
            elif kind == 3:  # gap
                length, height = r.uniform(3, 12), 0.0
            else:  # wall or fence
                length, height = r.uniform(4, 14), r.uniform(0.9, 2.4)
            segs.append(
                dict(
                    kind=kind,
                    z0=z,
                    z1=z + length,
                    height=height,
                    color=_jitter(r, _choice(r, _BUILDING_COLORS), 18),
                    win_w=r.uniform(1.4, 3.2),
                    floor_h=r.uniform(2.8, 3.6),
                    win_col=_jitter(r, (60, 70, 85), 25),
                    shop=r.random() < 0.5))
            z += length
        return segs

    def _side_plane(self, side: int, dist: float,
                    max_h: float) -> Tuple[np.ndarray, ...]:
        """Pixels of the plane X = side * dist with 0 <= Y <= max_h.

        Returns flat pixel indices and the plane's Z and Y there.
        """
        c = self.c
        # The plane only shows on its own side of the vanishing point.
        if side < 0:
            cols = slice(0, int(np.clip(np.floor(c.cx), 0, self.w)))
        else:
            cols = slice(int(np.clip(np.ceil(c.cx), 0, self.w)), self.w)
        xs = self.xs[:, cols].reshape(-1)
        ys = self.ys[:, cols].reshape(-1)
        n_cols = cols.stop - cols.start
        pix = (np.arange(self.h)[:, None] * self.w +
               np.arange(cols.start, cols.stop)[None]).reshape(-1)
        if n_cols <= 0:
            return pix, xs, ys
        dx = xs - c.cx
        ok = side * dx > 0.25
        z = (c.f * side * dist) / np.where(ok, dx, 1.0)
        y = c.cam_h - (ys - c.hy) * z / c.f
        ok &= (z < self.far) & (y >= 0) & (y <= max_h)
        return pix[ok], z[ok], y[ok]

    def facade(self, side: int) -> None:
        """Vertical street-side plane at X = side * facade distance."""
        r, c = self.rng, self.c
        segs = self._segments()
        dist = self.facade_l if side < 0 else self.facade_r
        pix, z, y = self._side_plane(side, dist,
                                     max(s['height'] for s in segs))
        idx = np.clip(
            np.searchsorted(np.array([s['z1'] for s in segs]), z), 0,
            len(segs) - 1)

        def per_seg(key: str, dtype=np.float32) -> np.ndarray:
            return np.array([s[key] for s in segs], dtype)[idx]

        kinds = per_seg('kind', np.int8)
        height = per_seg('height')
        along = z - per_seg('z0')
        # Fences are see-through between slats and rails.
        slat = (((along / 0.3) % 1.0 < 0.45) |
                (np.abs(y - 0.2 * height) < 0.07) |
                (np.abs(y - 0.85 * height) < 0.07))
        keep = (y <= height) & (kinds < 3) & ((kinds != 2) | slat)
        pix, z, y, idx, kinds, height, along = (
            a[keep] for a in (pix, z, y, idx, kinds, height, along))
        lab = np.array([BUILDING, WALL, FENCE], np.uint8)[kinds]

        grain = (1 + 0.06 * self.mid.reshape(-1)[pix] +
                 0.04 * self.fine.reshape(-1)[pix])
        col = np.array([s['color'] for s in segs], np.float32)[idx]
        col *= grain[:, None]
        # Windows on a per-building grid; each window has its own look.
        win_col = np.array([s['win_col'] for s in segs], np.float32)[idx]
        u = along / per_seg('win_w')
        v = y / per_seg('floor_h')
        fu, fv = u % 1.0, v % 1.0
        win = ((kinds == 0) & (fu > 0.25) & (fu < 0.75) & (fv > 0.3) &
               (fv < 0.8) & (y > 2.8) & (y < height - 0.8))
        lit = _cell_value(self.tab[1], u[win] + idx[win] * 7.0, v[win])
        col[win] = win_col[win] * (0.6 + 0.8 * lit)[:, None]
        shop = ((kinds == 0) & per_seg('shop', bool) & (y > 0.4) & (y < 2.5) &
                ((along / 4.0) % 1.0 > 0.12))
        col[shop] = win_col[shop] * 0.55
        # Cornice and the joints between neighbouring buildings.
        edge = (kinds == 0) & ((height - y < 0.35) | (along < 0.25))
        col[edge] *= 1.15
        # Walls: same palettes as buildings, no windows, a darker cap.
        col[(kinds == 1) & (height - y < 0.15)] *= 0.8
        if self.shadow_side == side:
            col *= 0.65
        c.surface(pix, z, lab, col)

        # Hedges / trees behind the facade line, visible through gaps and
        # above low buildings.
        back = dist + r.uniform(2.5, 8.0)
        base_h, amp = r.uniform(1.5, 5), r.uniform(2, 8)
        table = r.random(64).astype(np.float32)
        period = r.uniform(3, 7)
        pix, z, y = self._side_plane(side, back, base_h + amp)
        t = z / period
        i0 = np.floor(t).astype(np.int32) & 63
        ft = t - np.floor(t)
        prof = table[i0] + (table[(i0 + 1) & 63] - table[i0]) * ft
        keep = y <= base_h + amp * prof
        pix, z = pix[keep], z[keep]
        col = self.veg_col * self.foliage.reshape(-1)[pix][:, None]
        c.surface(pix, z, VEGETATION, col)

    def backdrop(self) -> None:
        """Front-facing blocks that close the street at the far plane."""
        r, c = self.rng, self.c
        zf = self.far
        # Keep the sky above the street end open.
        top = c.cam_h + 0.55 * c.hy * zf / c.f
        edges, heights, cols, vegs = [], [], [], []
        pos = -3 * zf
        while pos < 3 * zf:
            pos += r.uniform(6, 25)
            edges.append(pos)
            veg = r.random() < 0.3
            vegs.append(veg)
            heights.append(
                min(top,
                    r.uniform(4, 12) if veg else r.uniform(6, 35)))
            cols.append(
                self.veg_col if veg else _jitter(r, _choice(
                    r, _BUILDING_COLORS), 15))
        # Rows between the tallest block top and the ground line.
        y_top = c.hy + c.f * (c.cam_h - max(heights)) / zf
        y_bot = c.hy + c.f * (c.cam_h + 1) / zf
        r0 = int(np.clip(np.floor(y_top), 0, self.h))
        r1 = int(np.clip(np.ceil(y_bot) + 1, 0, self.h))
        xs = self.xs[r0:r1].reshape(-1)
        ys = self.ys[r0:r1].reshape(-1)
        pix = np.arange(r0 * self.w, r1 * self.w)
        x = (xs - c.cx) * zf / c.f
        y = c.cam_h - (ys - c.hy) * zf / c.f
        idx = np.clip(np.searchsorted(np.array(edges), x), 0, len(edges) - 1)
        keep = (y >= -1) & (y <= np.array(heights, np.float32)[idx])
        pix, idx = pix[keep], idx[keep]
        x, y = x[keep], y[keep]
        veg = np.array(vegs)[idx]
        lab = np.where(veg, VEGETATION, BUILDING).astype(np.uint8)
        tex = np.where(veg,
                       self.foliage.reshape(-1)[pix],
                       1 + 0.05 * self.mid.reshape(-1)[pix])
        # Distant windows: a coarse grid, darker than the wall.
        win = (~veg & ((x / 2.5) % 1.0 < 0.45) & ((y / 3.2) % 1.0 > 0.4) &
               (y > 3) & (y < np.array(heights, np.float32)[idx] - 1))
        tex[win] *= 0.62
        col = np.array(cols, np.float32)[idx] * tex[:, None]
        c.surface(pix, np.full(pix.shape, zf, np.float32), lab, col)

    # -- objects ------------------------------------------------------------
    def _car(self, x: float, z: float, label: int = CAR) -> None:
        r, c = self.rng, self.c
        if label == TRUCK:
            w = r.uniform(2.3, 2.5)
            length = r.uniform(7, 10)
            h = r.uniform(2.8, 3.6)
            body = _jitter(r, _choice(r, _TRUCK_COLORS), 12)
        else:
            w = r.uniform(1.65, 1.95)
            length = r.uniform(3.9, 4.7)
            h = r.uniform(1.4, 1.6)
            body = _jitter(r, _choice(r, _CAR_COLORS), 12)
        x0, x1 = x - w / 2, x + w / 2
        belt = h * (0.82 if label == TRUCK else 0.55)
        glass = _jitter(r, (45, 52, 62), 12)
        dark = (28.0, 28.0, 30.0)
        # Contact shadow on the street.
        pts = [
            c.project(*p)
            for p in ((x0 - 0.1, 0, z - 0.1), (x1 + 0.1, 0, z - 0.1),
                      (x1 + 0.1, 0, z + length), (x0 - 0.1, 0, z + length))
        ]
        p = np.round(np.asarray(pts) * 16).astype(np.int32).reshape(1, -1, 2)
        cv2.fillPoly(c.shade, p, r.uniform(0.35, 0.55), cv2.LINE_8, 4)
        # Side face towards the camera axis.
        if x0 > 0 or x1 < 0:
            xs = x0 if x0 > 0 else x1
            side = body * 0.78
            c.poly([(xs, 0.22, z), (xs, 0.22, z + length),
                    (xs, belt, z + length), (xs, belt, z)], label, side)
            if label == TRUCK:
                c.poly([(xs, belt, z + length * 0.85),
                        (xs, h, z + length * 0.85), (xs, h, z + length),
                        (xs, belt, z + length)], label, side * 0.9)
            else:
                c.poly([(xs, belt, z + 0.2 * length),
                        (xs, belt, z + 0.85 * length),
                        (xs, h, z + 0.7 * length), (xs, h, z + 0.32 * length)],
                       label, glass)
                c.line((xs, belt, z + 0.52 * length),
                       (xs, h, z + 0.52 * length), 0.08, label, side)
            # Wheels are circles in the side plane: ellipses once projected.
            ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            for zw in (z + 0.8, z + length - 0.9):
                rim = [(xs, 0.33 + 0.33 * np.sin(a), zw + 0.33 * np.cos(a))
                       for a in ang]
                c.poly(rim, label, dark, z=zw)
        # Top of the boot / cargo box (the camera is above the belt line).
        c.poly([(x0, belt, z), (x1, belt, z), (x1, belt, z + length * 0.25),
                (x0, belt, z + length * 0.25)], label, body * 1.08)
        if label != TRUCK:
            c.poly([(x0 + 0.12 * w, belt, z + 0.6),
                    (x1 - 0.12 * w, belt, z + 0.6), (x1 - 0.2 * w, h, z + 0.9),
                    (x0 + 0.2 * w, h, z + 0.9)], label, glass)
        # Rear face, tyres, lights, plate.
        for xa, xb in ((x0, x0 + 0.2 * w), (x1 - 0.2 * w, x1)):
            c.rect(xa, xb, 0.0, 0.35, z + 0.3, label, dark)
        c.rect(x0, x1, 0.22, belt, z, label, body)
        c.rect(x0, x1, 0.22, 0.36, z, label, body * 0.55)
        lamp = (200.0, 30.0, 25.0) if r.random() < 0.7 else (230, 220, 180)
        c.rect(x0 + 0.02, x0 + 0.2 * w, belt - 0.22, belt - 0.08, z, label,
               lamp)
        c.rect(x1 - 0.2 * w, x1 - 0.02, belt - 0.22, belt - 0.08, z, label,
               lamp)
        c.rect(x - 0.25, x + 0.25, 0.4, 0.52, z, label, (220, 220, 215))

    def _person(self,
                x: float,
                z: float,
                label: int = PERSON,
                seated: float = 0.0) -> None:
        r, c = self.rng, self.c
        h = r.uniform(1.55, 1.92)
        legs = _jitter(r, _choice(r, _CLOTHES_COLORS), 15)
        shirt = _jitter(r, _choice(r, _CLOTHES_COLORS), 15)
        skin = _jitter(r, _choice(r, _SKIN_COLORS), 10)
        hair = _jitter(r, (40, 30, 25), 15)
        hip = 0.5 * h + seated
        stride = r.uniform(-0.09, 0.09) * h
        lw = 0.06 * h
        if seated:
            # On a saddle: thighs forward, shins down to the pedals.
            c.poly([(x - lw, hip, z), (x + 0.25 * h, hip - 0.05, z),
                    (x + 0.25 * h, hip - 0.05 - 0.3 * h, z),
                    (x + 0.2 * h, hip - 0.05 - 0.3 * h, z),
                    (x + 0.19 * h, hip - 0.05 - lw, z), (x - lw, hip - lw, z)],
                   label, legs)
        else:
            for s in (-1, 1):
                c.poly([(x + s * 0.01 * h, hip, z),
                        (x + s * 0.01 * h + s * lw, hip, z),
                        (x + s * stride / 2 + s * lw, 0, z),
                        (x + s * stride / 2, 0, z)], label, legs)
        sh = hip + 0.32 * h
        c.poly([(x - 0.09 * h, hip, z), (x + 0.09 * h, hip, z),
                (x + 0.12 * h, sh, z), (x - 0.12 * h, sh, z)], label, shirt)
        for s in (-1, 1):
            swing = r.uniform(-0.04, 0.04) * h
            c.poly([(x + s * 0.12 * h, sh, z), (x + s * 0.155 * h, sh, z),
                    (x + s * 0.15 * h + swing, sh - 0.33 * h, z),
                    (x + s * 0.12 * h + swing, sh - 0.33 * h, z)], label,
                   shirt * 0.85)
            c.disc(x + s * 0.135 * h + swing, sh - 0.35 * h, z, 0.025 * h,
                   label, skin)
        c.rect(x - 0.025 * h, x + 0.025 * h, sh, sh + 0.04 * h, z, label, skin)
        c.disc(x, sh + 0.1 * h, z, 0.065 * h, label, skin)
        c.disc(x, sh + 0.125 * h, z, 0.06 * h, label, hair)
        if r.random() < 0.25:  # a bag
            c.rect(x + 0.1 * h, x + 0.2 * h, hip - 0.12 * h, hip + 0.05 * h, z,
                   label, _jitter(r, (70, 50, 40), 20))

    def _cyclist(self, x: float, z: float) -> None:
        """Side-on bicycle crossing the view, with its rider."""
        r, c = self.rng, self.c
        frame = _jitter(r, _choice(r, _CAR_COLORS), 15)
        tyre = (25.0, 25.0, 25.0)
        wr = 0.34
        for s in (-0.55, 0.55):
            c.disc(x + s, wr, z, wr, BICYCLE, tyre, thickness=0.06)
        pts = [(x - 0.55, wr, z), (x - 0.05, wr, z), (x + 0.35, 0.85, z),
               (x - 0.2, 0.85, z)]
        for a, b in zip(pts, pts[1:] + pts[:1]):
            c.line(a, b, 0.04, BICYCLE, frame)
        c.line((x + 0.55, wr, z), (x + 0.4, 1.0, z), 0.04, BICYCLE, frame)
        self._person(x - 0.2, z, RIDER, seated=0.4)

    def _pole(self, x: float, z: float) -> None:
        r, c = self.rng, self.c
        grey = _jitter(
            r, _choice(r, ((130, 130, 132), (70, 72, 70), (40, 60, 45))), 12)
        w = r.uniform(0.1, 0.22)
        top = r.uniform(3.5, 8.0)
        c.rect(x - w / 2, x + w / 2, 0, top, z, POLE, grey)
        if top > 6 and r.random() < 0.6:  # street lamp arm over the road
            reach = -np.sign(x) * r.uniform(0.8, 2.0)
            c.poly([(x, top - 0.1, z), (x + reach, top - 0.1, z),
                    (x + reach, top + 0.05, z), (x, top + 0.05, z)], POLE,
                   grey)
        p = r.random()
        if p < 0.6:
            self._sign(x, r.uniform(2.1, min(top - 0.3, 3.2)), z - 0.05)
        elif p < 0.75 and top > 3.8:
            self._traffic_light(x, r.uniform(2.6, top - 0.9), z - 0.05)

    def _sign(self, x: float, y: float, z: float) -> None:
        r, c = self.rng, self.c
        s = r.uniform(0.55, 0.9)
        kind = int(r.integers(4))
        if kind == 0:  # prohibitory: red ring, white inside
            c.disc(x, y, z, s / 2, SIGN, (200, 30, 35))
            c.disc(x, y, z, s / 2 * 0.72, SIGN, (235, 235, 235))
        elif kind == 1:  # information: blue plate
            c.rect(x - s / 2, x + s / 2, y - s / 2, y + s / 2, z, SIGN,
                   (30, 70, 160))
            c.rect(x - s / 6, x + s / 6, y - s / 4, y + s / 4, z, SIGN,
                   (235, 235, 235))
        elif kind == 2:  # warning triangle
            c.poly([(x - s / 2, y - s / 3, z), (x + s / 2, y - s / 3, z),
                    (x, y + s / 2, z)], SIGN, (200, 30, 35))
            c.poly([(x - s / 3.3, y - s / 4.6, z),
                    (x + s / 3.3, y - s / 4.6, z), (x, y + s / 3.5, z)], SIGN,
                   (235, 235, 230))
        else:  # priority diamond
            c.poly([(x - s / 2, y, z), (x, y - s / 2, z), (x + s / 2, y, z),
                    (x, y + s / 2, z)], SIGN, (235, 235, 235))
            c.poly([(x - s / 3, y, z), (x, y - s / 3, z), (x + s / 3, y, z),
                    (x, y + s / 3, z)], SIGN, (230, 190, 30))

    def _traffic_light(self, x: float, y: float, z: float) -> None:
        r, c = self.rng, self.c
        w, h = 0.32, 0.9
        c.rect(x - w / 2, x + w / 2, y, y + h, z, LIGHT, (30, 32, 30))
        on = int(r.integers(3))
        lamp = ((40, 220, 120), (250, 180, 30), (240, 40, 30))
        for i in range(3):
            col = lamp[i] if i == on else (60, 60, 55)
            c.disc(x, y + h * (0.2 + 0.3 * i), z - 0.01, 0.1, LIGHT, col)

    def _tree(self, x: float, z: float) -> None:
        r, c = self.rng, self.c
        trunk_h = r.uniform(1.8, 3.2)
        c.rect(x - 0.13, x + 0.13, 0, trunk_h + 0.6, z, VEGETATION,
               _jitter(r, (85, 70, 55), 12))
        rad = r.uniform(1.2, 2.6)
        circles = [(x, trunk_h + rad * 0.8, z, rad)]
        for _ in range(int(r.integers(3, 8))):
            circles.append((x + r.uniform(-1, 1) * rad,
                            trunk_h + rad * r.uniform(0.3, 1.5), z,
                            rad * r.uniform(0.45, 0.8)))
        c.blob(circles, VEGETATION, _jitter(r, self.veg_col, 10), self.foliage)

    def _clutter(self, x: float, z: float) -> None:
        """Bins, bollards, boxes: unlabeled (void) in Cityscapes."""
        r, c = self.rng, self.c
        w, h = r.uniform(0.3, 0.9), r.uniform(0.5, 1.2)
        col = _jitter(
            r,
            _choice(r, ((40, 90, 50), (150, 150, 40), (90, 60, 40),
                        (60, 60, 65))), 20)
        c.rect(x - w / 2, x + w / 2, 0, h, z, IGNORE, col)

    def _place(self, x: float, zmin: float, zmax: float) -> Optional[float]:
        """A depth in [zmin, zmax] at which world X ``x`` is in view."""
        c = self.c
        need = max(-x * c.f / max(c.cx, 1), x * c.f / max(c.w - c.cx, 1))
        lo = max(zmin, need * 1.08 + 0.5)
        if lo >= zmax:
            return None
        return self.rng.uniform(lo, zmax)

    def objects(self) -> None:
        r = self.rng
        jobs: List[Tuple[float, Callable, tuple, dict]] = []

        def add(z: Optional[float], fn: Callable, *args, **kwargs) -> None:
            if z is not None:
                jobs.append((z, fn, args, kwargs))

        walk_l = (-self.facade_l + 0.5, -self.road_l - self.verge_l - 0.3)
        walk_r = (self.road_r + self.verge_r + 0.3, self.facade_r - 0.5)
        # Poles and signs along both curbs.
        for curb in (-self.road_l - self.verge_l - 0.45,
                     self.road_r + self.verge_r + 0.45):
            z = r.uniform(4, 14)
            while z < 55:
                zz = self._place(curb, z, z + 0.1)
                add(zz, self._pole, curb)
                z += r.uniform(9, 22)
        # Street trees near the facades.
        if r.random() < 0.85:
            for _ in range(int(r.integers(2, 7))):
                side = walk_l if r.random() < 0.5 else walk_r
                x = side[0] if side is walk_l else side[1]
                x += r.uniform(-0.3, 0.3)
                add(self._place(x, 6, 50), self._tree, x)
        # Cars: parked along the curbs and moving in the lanes.
        for _ in range(int(r.integers(2, 8))):
            p = r.random()
            if p < 0.45:
                x = -self.road_l + 1.1
            elif p < 0.8:
                x = self.road_r - 1.1
            else:
                x = r.uniform(-self.road_l + 1.5, self.road_r - 1.5)
            zmin = 7.0 if abs(x) < 2 else 4.0
            add(self._place(x, zmin, 50), self._car, x)
        if r.random() < 0.2:
            x = r.uniform(-self.road_l + 1.5, self.road_r - 1.5)
            add(self._place(x, 14, 50), self._car, x, label=TRUCK)
        # Pedestrians on the sidewalks, sometimes on the road.
        for _ in range(int(r.integers(1, 9))):
            p = r.random()
            if p < 0.45:
                x = r.uniform(*walk_l)
            elif p < 0.9:
                x = r.uniform(*walk_r)
            else:
                x = r.uniform(-self.road_l, self.road_r)
            add(self._place(x, 5, 40), self._person, x)
        if r.random() < 0.25:
            x = r.uniform(-self.road_l + 0.5, self.road_r - 0.5)
            add(self._place(x, 8, 35), self._cyclist, x)
        for _ in range(int(r.integers(0, 4))):
            side = walk_l if r.random() < 0.5 else walk_r
            x = r.uniform(*side)
            add(self._place(x, 5, 40), self._clutter, x)
        # Painter's algorithm: far to near. Stable sort keeps it
        # deterministic for equal depths.
        for z, fn, args, kwargs in sorted(jobs, key=lambda j: -j[0]):
            fn(*args, z, **kwargs)

    # -- camera effects -----------------------------------------------------
    def finish(self) -> Tuple[np.ndarray, np.ndarray]:
        r, c = self.rng, self.c
        col, lab = c.col, c.lab
        ground = (lab == ROAD) | (lab == SIDEWALK) | (lab == TERRAIN)
        col[ground] *= c.shade[ground][:, None]
        # Aerial perspective.
        haze = _jitter(r, (185, 195, 205), 15)
        a = (1 - np.exp(c.depth * np.float32(-1 / r.uniform(80, 220))))
        a *= np.float32(r.uniform(0.25, 0.6))
        a[lab == SKY] = 0
        col += (haze - col) * a[..., None]
        # Ego-vehicle bonnet at the bottom: void, as in Cityscapes.
        if r.random() < 0.8:
            depth = self.h * r.uniform(0.04, 0.1)
            r0 = int(np.clip(np.floor(self.h - depth), 0, self.h - 1))
            xs, ys = self.xs[r0:], self.ys[r0:]
            t = (xs - self.w / 2) / (self.w * 0.7)
            hood = ys > self.h - depth * np.clip(1 - t * t, 0, 1)
            paint = _jitter(r, _choice(r, _CAR_COLORS), 10) * 0.6
            g = np.clip((ys - (self.h - depth)) / max(depth, 1), 0, 1)
            col[r0:][hood] = paint * (0.7 + 0.6 * g[hood])[:, None]
            lab[r0:][hood] = IGNORE
        # Exposure, white balance and vignetting in one gain; then gamma.
        vx = ((self.xs[0] - self.w / 2) / self.w)**2
        vy = ((self.ys[:, 0] - self.h / 2) / self.h)**2
        vignette = 1 - r.uniform(0, 0.5) * (vx[None] + vy[:, None])
        gain = (r.uniform(0.6, 1.3) * r.uniform(0.92, 1.08, 3)).astype(
            np.float32)
        col *= vignette[..., None] * gain
        np.clip(col, 0, 255, out=col)
        col = 255.0 * (col * np.float32(1 / 255))**np.float32(
            r.uniform(0.8, 1.25))
        # Small roll: black, void corners like the rectification border.
        if r.random() < 0.4:
            angle = r.uniform(-2.5, 2.5)
            m = cv2.getRotationMatrix2D((self.w / 2, self.h / 2), angle, 1.0)
            col = cv2.warpAffine(
                col,
                m, (self.w, self.h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0))
            lab = cv2.warpAffine(
                lab,
                m, (self.w, self.h),
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=IGNORE)
        # Optics blur, in pixels of a 1024-wide frame.
        sigma = r.uniform(0.3, 0.75) * max(1.0, self.w / 1024)
        col = cv2.GaussianBlur(col, (0, 0), sigma)
        # Sensor noise (luminance only: cheaper, and enough of a nuisance).
        noise = self.tex_rng.standard_normal((self.h, self.w),
                                             dtype=np.float32)
        col += (noise * np.float32(r.uniform(1.5, 6.0)))[..., None]
        col += 0.5
        np.clip(col, 0, 255, out=col)
        return col.astype(np.uint8), lab

    def render(self) -> Tuple[np.ndarray, np.ndarray]:
        self.sky()
        self.ground()
        self.facade(-1)
        self.facade(1)
        self.backdrop()
        self.objects()
        return self.finish()


def render_scene(
    index: int,
    seed: int = 0,
    size: Tuple[int, int] = (128, 256)
) -> Tuple[np.ndarray, np.ndarray]:
    """Render one scene.

    Args:
        index (int): Image index; val images use ``VAL_INDEX_OFFSET + i``.
        seed (int): Data set seed.
        size (tuple[int, int]): ``(height, width)``.

    Returns:
        tuple[np.ndarray, np.ndarray]: RGB ``uint8`` image (H, W, 3) and
        train-id label map ``uint8`` (H, W).
    """
    rng = np.random.default_rng(seed * 100003 + index)
    return _SceneRenderer(rng, int(size[0]), int(size[1])).render()


# ---------------------------------------------------------------------------
# on-disk tree
# ---------------------------------------------------------------------------
def _stems(split: str, num: int, cities: Sequence[str]) -> List[tuple]:
    """``(city, stem, render index)`` for every image of a split."""
    offset = 0 if split == 'train' else VAL_INDEX_OFFSET
    out = []
    for i in range(num):
        city = cities[i % len(cities)]
        seq = i // len(cities)
        out.append((city, f'{city}_{seq:06d}_{FRAME_ID:06d}', offset + i))
    return out


def _paths(root: str, split: str, city: str, stem: str) -> Tuple[str, str]:
    return (osp.join(root, 'leftImg8bit', split, city,
                     f'{stem}_leftImg8bit.png'),
            osp.join(root, 'gtFine', split, city,
                     f'{stem}_gtFine_labelTrainIds.png'))


def _all_files(root: str, params: dict) -> List[Tuple[str, str, int]]:
    files = []
    for split in ('train', 'val'):
        for city, stem, index in _stems(split, params[f'num_{split}'],
                                        params['cities']):
            img, seg = _paths(root, split, city, stem)
            files.append((img, seg, index))
    return files


def _remove_tree_files(root: str, params: dict, keep: set) -> None:
    """Delete what an earlier generation wrote (bar ``keep``), nothing else."""
    try:
        files = _all_files(root, params)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return  # unreadable meta: leave the files alone
    dirs = set()
    for img, seg, _ in files:
        for path in (img, seg):
            if path not in keep and osp.isfile(path):
                os.remove(path)
            dirs.add(osp.dirname(path))
    for d in sorted(dirs, key=len, reverse=True):
        # Prune emptied directories, never root or anything holding files.
        while (d.startswith(root + os.sep) and osp.isdir(d)
               and not os.listdir(d)):
            os.rmdir(d)
            d = osp.dirname(d)


def _write_meta(path: str, meta: dict) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def generate_cityscapes(root: str,
                        num_train: int = 8,
                        num_val: int = 4,
                        size: tuple = (128, 256),
                        seed: int = 0,
                        cities: tuple = ('synth', ),
                        progress: bool = False) -> dict:
    """Write a synthetic data set in the Cityscapes layout under ``root``.

    Files (``<stem>`` is ``<city>_<seq:06d>_000019``)::

        root/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
        root/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png
        root/synthetic_meta.json

    Images are RGB ``uint8``; labels are single-channel ``uint8`` train ids
    (0..18, 255 = void). Image ``i`` of a split is drawn from
    ``np.random.default_rng(seed * 100003 + index)`` with ``index = i`` for
    train and ``VAL_INDEX_OFFSET + i`` for val, so a tree is byte-identical
    across runs and val does not change with ``num_train``.

    If ``root`` already holds a complete tree generated with the same
    parameters (and generator version), it is reused without writing
    anything. A tree made with other parameters is replaced; when only the
    image counts differ, the images both trees share are kept as they are.
    A ``root`` that has ``leftImg8bit`` images but no ``synthetic_meta.json``
    (e.g. the real Cityscapes) is never touched.

    Args:
        root (str): Data root.
        num_train (int): Number of training images. Defaults to 8.
        num_val (int): Number of validation images. Defaults to 4.
        size (tuple): ``(height, width)``. Defaults to (128, 256).
        seed (int): Data set seed. Defaults to 0.
        cities (tuple): City names; images are dealt round-robin.
            Defaults to ``('synth', )``.
        progress (bool): Print a progress bar. Defaults to False.

    Returns:
        dict: ``root``, ``img_dir``, ``ann_dir``, ``meta_file``, ``size``,
        ``seed``, ``cities``, ``num_train``, ``num_val``, ``num_files``
        (images + labels in the tree), ``reused`` (whether the existing tree
        was kept untouched) and ``num_written`` (images rendered now).
    """
    if len(size) != 2 or min(int(s) for s in size) < 16:
        raise ValueError(f'size must be (height, width) >= 16, got {size}')
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0')
    if isinstance(cities, str):
        cities = (cities, )
    if not cities or any(not c or os.sep in c or '_' in c for c in cities):
        # Cityscapes stems are split on '_' by the official scripts.
        raise ValueError(f'cities must be non-empty names without "_" or '
                         f'path separators, got {cities}')
    root = osp.abspath(osp.expanduser(root))
    params = dict(
        version=GENERATOR_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        size=[int(size[0]), int(size[1])],
        seed=int(seed),
        cities=list(cities))
    meta_path = osp.join(root, META_FILE)
    files = _all_files(root, params)
    info = dict(
        root=root,
        img_dir=osp.join(root, 'leftImg8bit'),
        ann_dir=osp.join(root, 'gtFine'),
        meta_file=meta_path,
        size=tuple(params['size']),
        seed=params['seed'],
        cities=tuple(cities),
        num_train=params['num_train'],
        num_val=params['num_val'],
        num_files=2 * len(files))

    old = None
    if osp.isfile(meta_path):
        try:
            with open(meta_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
    old_params = old.get('params') if isinstance(old, dict) else None
    complete = bool(old and old.get('complete')) and isinstance(
        old_params, dict)
    if (complete and old_params == params
            and all(osp.isfile(a) and osp.isfile(b) for a, b, _ in files)):
        return dict(info, reused=True, num_written=0)

    keep = set()
    if old is None:
        img_root = osp.join(root, 'leftImg8bit')
        if osp.isdir(img_root) and any(
                n.endswith('.png') for _, _, names in os.walk(img_root)
                for n in names):
            raise FileExistsError(
                f'{root} holds leftImg8bit images but no {META_FILE}; '
                'refusing to write synthetic data into what looks like a '
                'real data set. Use an empty directory.')
    elif isinstance(old_params, dict):
        counts = ('num_train', 'num_val')
        if complete and all(
                old_params.get(k) == v
                for k, v in params.items() if k not in counts):
            # Only the counts changed: an image depends on its index alone,
            # so the files both trees share are already right.
            keep = {p for a, b, _ in files for p in (a, b) if osp.isfile(p)}
        _remove_tree_files(root, old_params, keep)

    os.makedirs(root, exist_ok=True)
    meta = dict(
        generator='mmgdkd.datasets.synthetic_cityscapes',
        params=params,
        counts=dict(train=params['num_train'], val=params['num_val']),
        class_names=list(CLASS_NAMES),
        complete=False)
    # Written first: an interrupted run is recognised (and cleaned) later.
    _write_meta(meta_path, meta)

    todo = [f for f in files if not (f[0] in keep and f[1] in keep)]
    bar = None
    if progress and todo:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(todo))
    for img_path, seg_path, index in todo:
        img, lab = render_scene(index, params['seed'], tuple(params['size']))
        for path in (img_path, seg_path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        if not (cv2.imwrite(img_path, img[..., ::-1])
                and cv2.imwrite(seg_path, lab)):
            raise OSError(f'could not write {img_path}')
        if bar is not None:
            bar.update()
    if bar is not None:
        print()

    meta['complete'] = True
    _write_meta(meta_path, meta)
    return dict(info, reused=False, num_written=len(todo))


def parse_args(args: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a synthetic data set in the Cityscapes layout')
    parser.add_argument('root', help='output data root')
    parser.add_argument('--num-train', type=int, default=8)
    parser.add_argument('--num-val', type=int, default=4)
    parser.add_argument(
        '--size', type=int, nargs=2, default=(128, 256), metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cities', nargs='+', default=['synth'])
    return parser.parse_args(args)


def main(args: Optional[Sequence[str]] = None) -> Dict:
    opts = parse_args(args)
    info = generate_cityscapes(
        opts.root,
        num_train=opts.num_train,
        num_val=opts.num_val,
        size=tuple(opts.size),
        seed=opts.seed,
        cities=tuple(opts.cities),
        progress=True)
    state = 'reused' if info['reused'] else f"wrote {info['num_written']} of"
    print(f"{state} {info['num_train']} train + {info['num_val']} val images "
          f"({info['size'][0]}x{info['size'][1]}) under {info['root']}")
    return info


if __name__ == '__main__':
    main()
