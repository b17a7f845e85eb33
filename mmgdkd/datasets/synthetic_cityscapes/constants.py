# Copyright (c) mmgdkd contributors. All rights reserved.
"""Class ids, file-layout constants and palettes of the synthetic scenes."""
from typing import Tuple

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
