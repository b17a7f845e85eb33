# Copyright (c) mmgdkd contributors. All rights reserved.
"""Convert Cityscapes polygon annotations to train-id label maps.

For every ``<gt-dir>/<split>/<city>/<stem>_gtFine_polygons.json`` this writes
``<stem>_gtFine_labelTrainIds.png`` next to it (train ids 0..18, 255 for
void), which is what ``mmseg.datasets.CityscapesDataset`` reads, and one
split list per split directory (``train.txt``, ``val.txt``, ``test.txt``;
``train_extra.txt`` for gtCoarse) holding ``<city>/<stem>`` lines.

Example::

    python tools/dataset_converters/cityscapes.py data/cityscapes --nproc 8

Only ``cityscapesscripts`` is needed (``pip install cityscapesscripts``);
neither MMSegmentation nor torch is imported.
"""
import argparse
import os
import os.path as osp
import sys
import time
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence

POLYGON_SUFFIX = '_polygons.json'
LABEL_SUFFIX = '_labelTrainIds.png'


def find_polygon_files(gt_dir: str) -> List[str]:
    """All ``*_polygons.json`` files under ``gt_dir``, sorted.

    Args:
        gt_dir (str): Annotation root, e.g. ``data/cityscapes/gtFine``.

    Returns:
        list[str]: Paths relative to ``gt_dir``.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(gt_dir):
        dirnames.sort()
        for name in filenames:
            if name.endswith(POLYGON_SUFFIX):
                found.append(osp.relpath(osp.join(dirpath, name), gt_dir))
    return sorted(found)


def convert_json_to_label(json_file: str) -> str:
    """Rasterise one polygon file into its ``*_labelTrainIds.png``.

    Args:
        json_file (str): Path of a ``*_polygons.json`` file.

    Returns:
        str: Path of the written label map.
    """
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    label_file = json_file[:-len(POLYGON_SUFFIX)] + LABEL_SUFFIX
    try:
        json2labelImg(json_file, label_file, 'trainIds')
    except SystemExit as e:
        # cityscapesscripts calls sys.exit() on an unknown label; in a pool
        # worker that would kill the worker and hang the parent.
        raise RuntimeError(
            f'cityscapesscripts could not convert {json_file} '
            f'(exit status {e.code}); see its message above') from None
    except Exception as e:
        raise RuntimeError(f'failed to convert {json_file}: {e!r}') from e
    return label_file


class _Progress:
    """Minimal progress display: a rewritten line on a terminal, a line
    every ~10% otherwise (so logs stay short)."""

    def __init__(self, total: int, stream=sys.stdout) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.start = time.time()
        self.tty = hasattr(stream, 'isatty') and stream.isatty()
        self.step = max(1, total // 10)

    def update(self) -> None:
        self.done += 1
        if not (self.tty or self.done % self.step == 0
                or self.done == self.total):
            return
        elapsed = time.time() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        msg = (f'converted {self.done}/{self.total} '
               f'({rate:.1f} files/s, {elapsed:.0f}s)')
        if self.tty:
            end = '\n' if self.done == self.total else ''
            self.stream.write('\r' + msg + end)
        else:
            self.stream.write(msg + '\n')
        self.stream.flush()


def convert_all(json_files: Sequence[str], nproc: int = 1) -> List[str]:
    """Convert every polygon file, in ``nproc`` worker processes.

    Args:
        json_files (Sequence[str]): Polygon files (absolute or cwd-relative).
        nproc (int): Number of processes; 1 converts in this process.

    Returns:
        list[str]: The written label maps, in the order of ``json_files``.
    """
    progress = _Progress(len(json_files))
    if nproc <= 1 or len(json_files) <= 1:
        out = []
        for json_file in json_files:
            out.append(convert_json_to_label(json_file))
            progress.update()
        return out
    # Small chunks keep the progress display moving on small data sets.
    chunksize = max(1, min(32, len(json_files) // (nproc * 8)))
    with Pool(min(nproc, len(json_files))) as pool:
        for _ in pool.imap_unordered(
                convert_json_to_label, json_files, chunksize=chunksize):
            progress.update()
    return [f[:-len(POLYGON_SUFFIX)] + LABEL_SUFFIX for f in json_files]


def write_split_lists(gt_dir: str, polygon_files: Sequence[str],
                      out_dir: str) -> Dict[str, int]:
    """Write ``<split>.txt`` with ``<city>/<stem>`` lines per split.

    Args:
        gt_dir (str): Annotation root (only used for messages).
        polygon_files (Sequence[str]): Polygon files relative to ``gt_dir``,
            i.e. ``<split>/<city>/<stem>_gtFine_polygons.json``.
        out_dir (str): Where the lists go.

    Returns:
        dict[str, int]: Number of entries per split written.
    """
    splits: Dict[str, List[str]] = {}
    for rel in polygon_files:
        parts = rel.split(os.sep)
        if len(parts) < 2:
            print(
                f'skipping {osp.join(gt_dir, rel)} in no split list: '
                'not under <split>/',
                file=sys.stderr)
            continue
        name = '/'.join(parts[1:])[:-len(POLYGON_SUFFIX)]
        # '<stem>_gtFine' -> '<stem>', as MMSeg's split files.
        name = name.rsplit('_', 1)[0]
        splits.setdefault(parts[0], []).append(name)
    os.makedirs(out_dir, exist_ok=True)
    for split, names in splits.items():
        with open(osp.join(out_dir, f'{split}.txt'), 'w') as f:
            f.writelines(n + '\n' for n in sorted(names))
    return {split: len(names) for split, names in splits.items()}


def parse_args(args: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert Cityscapes polygon annotations to train-id '
        'label maps (*_labelTrainIds.png) and write split lists')
    parser.add_argument('cityscapes_path', help='Cityscapes data root')
    parser.add_argument(
        '--gt-dir',
        default='gtFine',
        type=str,
        help='annotation directory under cityscapes_path')
    parser.add_argument(
        '-o',
        '--out-dir',
        help='where the split lists go (default: cityscapes_path); label '
        'maps are always written next to their polygon files')
    parser.add_argument(
        '--nproc', default=1, type=int, help='number of processes')
    return parser.parse_args(args)


def main(args: Optional[Sequence[str]] = None) -> Dict[str, int]:
    opts = parse_args(args)
    root = opts.cityscapes_path
    gt_dir = osp.join(root, opts.gt_dir)
    if not osp.isdir(gt_dir):
        sys.exit(f'error: annotation directory {gt_dir} does not exist '
                 f'(cityscapes_path={root!r}, --gt-dir={opts.gt_dir!r})')
    rel_files = find_polygon_files(gt_dir)
    if not rel_files:
        sys.exit(f'error: no *{POLYGON_SUFFIX} files under {gt_dir}; '
                 'expected <split>/<city>/<stem>_gtFine_polygons.json '
                 '(download gtFine_trainvaltest.zip and unzip it there)')
    out_dir = opts.out_dir or root

    print(f'converting {len(rel_files)} polygon files under {gt_dir} '
          f'with {max(1, opts.nproc)} process(es)')
    try:
        convert_all([osp.join(gt_dir, f) for f in rel_files], opts.nproc)
    except RuntimeError as e:
        sys.exit(f'error: {e}')
    counts = write_split_lists(gt_dir, rel_files, out_dir)
    summary = ', '.join(f'{k}: {v}' for k, v in counts.items())
    print(f'split lists in {out_dir} ({summary})')
    return counts


if __name__ == '__main__':
    main()
