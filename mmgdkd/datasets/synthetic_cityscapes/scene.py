# Copyright (c) mmgdkd contributors. All rights reserved.
"""One street scene: layout, background, objects, camera effects."""
from typing import Tuple

import cv2
import numpy as np

from .background import _BackgroundMixin
from .canvas import _Canvas
from .constants import _CAR_COLORS, IGNORE, ROAD, SIDEWALK, SKY, TERRAIN
from .noise import _choice, _jitter, _smooth_noise
from .objects import _ObjectsMixin


class _SceneRenderer(_BackgroundMixin, _ObjectsMixin):
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
