# Copyright (c) mmgdkd contributors. All rights reserved.
"""Tiny-ImageNet's validation split in the class-folder layout.

The official archive (``tiny-imagenet-200``) has ``train/<wnid>/images/*``,
which MMPretrain's ``CustomDataset`` reads as is (class folders, files
found recursively), but ``val/images/*`` with the labels in
``val/val_annotations.txt``. :func:`organize_val` links (or copies) the
validation images into ``<out>/<wnid>/``, the layout of the train split and
of the GDKD authors' ``ImageFolder`` loader. The original files are left in
place. Standard library only.
"""
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

ANNOTATIONS = 'val_annotations.txt'


def read_val_annotations(val_dir: str) -> List[Tuple[str, str]]:
    """``(file name, wnid)`` pairs of ``<val_dir>/val_annotations.txt``.

    Each line is ``<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>``.

    Raises:
        FileNotFoundError: If the annotation file is missing.
        ValueError: On a line without a file name and a wnid, naming it.
    """
    path = osp.join(val_dir, ANNOTATIONS)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: expected the tiny-imagenet-200 val split')
    pairs = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip('\n').split('\t')
            if len(fields) < 2 or not fields[0] or not fields[1]:
                raise ValueError(f'{path}:{lineno}: expected "<file>\\t<wnid>'
                                 f'\\t...", got {line.rstrip()!r}')
            pairs.append((fields[0], fields[1]))
    return pairs


def _place(src: str, dst: str, mode: str) -> None:
    if mode == 'link':
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or no hard links: copy
            pass
    shutil.copy2(src, dst)


def organize_val(root: str,
                 out_dir: Optional[str] = None,
                 mode: str = 'link',
                 train_dir: Optional[str] = 'train') -> Dict[str, int]:
    """Put Tiny-ImageNet's validation images into class folders.

    Args:
        root (str): The ``tiny-imagenet-200`` directory (``val/images``,
            ``val/val_annotations.txt``).
        out_dir (str, optional): Output directory; defaults to
            ``<root>/val_classes``. It must not hold images already.
        mode (str): ``'link'`` (hard links, copying where that fails) or
            ``'copy'``.
        train_dir (str, optional): If given (relative to ``root``) and
            present, the validation wnids must be exactly the train class
            folders: ``CustomDataset`` numbers the classes by the folders
            it finds, so a class missing from one split would shift the
            labels of the other.

    Returns:
        dict: Number of images per wnid.

    Raises:
        ValueError: On a bad ``mode``, a non-empty output, a missing image
            or class sets of the two splits that differ.
    """
    if mode not in ('link', 'copy'):
        raise ValueError(f"mode must be 'link' or 'copy', got {mode!r}")
    val_dir = osp.join(root, 'val')
    out_dir = out_dir or osp.join(root, 'val_classes')
    pairs = read_val_annotations(val_dir)
    if train_dir is not None and osp.isdir(osp.join(root, train_dir)):
        train_path = osp.join(root, train_dir)
        classes = {e.name for e in os.scandir(train_path) if e.is_dir()}
        val_classes = {w for _, w in pairs}
        unknown = sorted(val_classes - classes)
        if unknown:
            raise ValueError(f'validation wnids not among the train classes '
                             f'of {train_path}: {unknown[:5]}')
        missing = sorted(classes - val_classes)
        if missing:
            raise ValueError(f'train classes without a validation image in '
                             f'{ANNOTATIONS}: {missing[:5]}')
    if osp.isdir(out_dir) and any(os.scandir(out_dir)):
        raise ValueError(f'{out_dir} is not empty; remove it or choose '
                         'another out_dir')
    counts: Dict[str, int] = {}
    for name, wnid in pairs:
        src = osp.join(val_dir, 'images', name)
        if not osp.isfile(src):
            raise ValueError(f'{src} is listed in {ANNOTATIONS} but missing')
        os.makedirs(osp.join(out_dir, wnid), exist_ok=True)
        _place(src, osp.join(out_dir, wnid, name), mode)
        counts[wnid] = counts.get(wnid, 0) + 1
    return counts
