# Copyright (c) mmgdkd contributors. All rights reserved.
"""Objects of a scene: vehicles, people, poles, signs, trees, clutter."""
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from .constants import (_CAR_COLORS, _CLOTHES_COLORS, _SKIN_COLORS,
                        _TRUCK_COLORS, BICYCLE, CAR, IGNORE, LIGHT, PERSON,
                        POLE, RIDER, SIGN, TRUCK, VEGETATION)
from .noise import _choice, _jitter


class _ObjectsMixin:
    """Object drawing of :class:`~.scene._SceneRenderer`."""

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
