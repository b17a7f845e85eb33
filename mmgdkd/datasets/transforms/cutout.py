# Copyright (c) mmgdkd contributors. All rights reserved.
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenterCutout(BaseTransform):
    """Cutout (DeVries & Taylor, 2017) as in the CRD / GDKD CIFAR code.

    ``n_holes`` squares of side ``length`` are zeroed, each centred on a
    pixel drawn uniformly from the image and clipped at its borders (so
    holes near a border are smaller). Unlike MMPretrain's ``Cutout``
    (a random top-left corner), this is the reference's distribution. The
    reference zeroes after ``ToTensor``; on uint8 images that is a fill of
    0 before normalisation.

    Required keys: ``img`` ``(H, W[, C])``. Modified keys: ``img``.

    Args:
        n_holes (int): Number of squares.
        length (int): Side of a square (even lengths as the reference:
            ``length // 2`` on each side of the centre).
        fill (int | float): Value written into the holes.
    """

    def __init__(self, n_holes: int = 1, length: int = 16,
                 fill: float = 0) -> None:
        for name, value in (('n_holes', n_holes), ('length', length)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        self.n_holes = n_holes
        self.length = length
        self.fill = fill

    def transform(self, results: dict) -> dict:
        img = results['img'].copy()
        h, w = img.shape[:2]
        half = self.length // 2
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            img[max(y - half, 0):min(y + half, h),
                max(x - half, 0):min(x + half, w)] = self.fill
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(n_holes={self.n_holes}, '
                f'length={self.length}, fill={self.fill})')
