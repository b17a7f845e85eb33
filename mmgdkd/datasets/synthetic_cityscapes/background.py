# Copyright (c) mmgdkd contributors. All rights reserved.
"""Background of a scene: sky, street surfaces, facades, far backdrop."""
from typing import List, Tuple

import numpy as np

from .constants import (_BUILDING_COLORS, BUILDING, FENCE, ROAD, SIDEWALK,
                        TERRAIN, VEGETATION, WALL)
from .noise import _cell_value, _choice, _jitter, _lattice_noise


class _BackgroundMixin:
    """Background drawing of :class:`~.scene._SceneRenderer`."""

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
