# Copyright (c) mmgdkd contributors. All rights reserved.
"""``python -m mmgdkd.datasets.synthetic_cityscapes ROOT ...``."""
import argparse
from typing import Dict, Optional, Sequence

from .tree import generate_cityscapes


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
    parser.add_argument(
        '--workers', type=int, default=1,
        help='processes rendering in parallel (same files for any number)')
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
        progress=True,
        workers=opts.workers)
    state = 'reused' if info['reused'] else f"wrote {info['num_written']} of"
    print(f"{state} {info['num_train']} train + {info['num_val']} val images "
          f"({info['size'][0]}x{info['size'][1]}) under {info['root']}")
    return info


if __name__ == '__main__':
    main()
