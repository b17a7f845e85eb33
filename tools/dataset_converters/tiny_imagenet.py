# Copyright (c) mmgdkd contributors. All rights reserved.
"""Put Tiny-ImageNet's validation images into class folders.

``tiny-imagenet-200/val/images/*.JPEG`` + ``val_annotations.txt`` become
``tiny-imagenet-200/val_classes/<wnid>/*.JPEG`` (hard links, or copies),
the layout the transfer-learning configs read with MMPretrain's
``CustomDataset``. The original files stay.

Example::

    python tools/dataset_converters/tiny_imagenet.py data/tiny-imagenet-200
"""
import argparse

from mmgdkd.datasets.tiny_imagenet import organize_val


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tiny-ImageNet val split -> class folders')
    parser.add_argument('root', help='the tiny-imagenet-200 directory')
    parser.add_argument(
        '--out-dir', help='output directory (default <root>/val_classes)')
    parser.add_argument(
        '--copy', action='store_true',
        help='copy the images instead of hard-linking them')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    counts = organize_val(
        args.root, args.out_dir, mode='copy' if args.copy else 'link')
    print(f'{sum(counts.values())} images in {len(counts)} class folders')


if __name__ == '__main__':
    main()
