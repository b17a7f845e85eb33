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

Modules, by concern: ``constants`` (class ids, layout, palettes), ``noise``
(texture helpers), ``canvas`` (buffers and camera), ``background`` and
``objects`` (what a scene holds), ``scene`` (one scene, camera effects),
``tree`` (the files on disk); ``python -m
mmgdkd.datasets.synthetic_cityscapes ROOT`` writes a tree.
"""
from .constants import (CLASS_NAMES, FRAME_ID, GENERATOR_VERSION, IGNORE,
                        META_FILE, VAL_INDEX_OFFSET)
from .scene import render_scene
from .tree import generate_cityscapes

__all__ = [
    'CLASS_NAMES', 'FRAME_ID', 'GENERATOR_VERSION', 'IGNORE', 'META_FILE',
    'VAL_INDEX_OFFSET', 'generate_cityscapes', 'render_scene'
]
