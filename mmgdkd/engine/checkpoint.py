# Copyright (c) mmgdkd contributors. All rights reserved.
"""Checkpoint files: safe loading, integrity, and which one to resume from.

A checkpoint that cannot be loaded is one of two very different things:
a damaged file (empty, truncated, flipped bytes), which no loader can read,
or an intact file that pickles objects outside the types an mmengine
checkpoint needs, which only an unsafe unpickler would read. Telling them
apart matters: the advice for the second (load a trusted file with
``weights_only=False``) is wrong, and dangerous, for the first.
"""
import glob
import os.path as osp
import pickle
import re
import warnings
import zipfile
from typing import List, Optional

import torch

# Defined beside the shims that install this loader (imported by
# ``import mmgdkd`` before this package).
from ..compat import UnsafeCheckpointError

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'checkpoint_problem',
    'find_resumable_checkpoint', 'load_local_checkpoint', 'resume_candidates'
]

#: The first bytes of ``torch.save``'s zip format and of its legacy format
#: (pickle protocol 2, then the magic number 0x1950a86a20f9469cfc6c).
_ZIP_MAGIC = b'PK\x03\x04'
_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'
_CHECKPOINT_NAME = re.compile(r'(?:iter|epoch)_(\d+)\.pth$')


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or damaged: nothing can load it.
    """


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why ``filename`` is not an intact ``torch.save`` file, or ``None``.

    Zip-format files (``torch.save``'s default) are checked completely: the
    archive must be readable, every member's CRC must match and the pickle
    (``data.pkl``) must be there. Legacy-format files can only be checked
    for their header; ``None`` then means "not known to be damaged".
    """
    size = osp.getsize(filename)
    if size == 0:
        return 'the file is empty (0 bytes)'
    with open(filename, 'rb') as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head.startswith(_LEGACY_MAGIC):
        return None
    if not head.startswith(_ZIP_MAGIC):
        return (f'it is not a PyTorch checkpoint (neither torch.save\'s zip '
                f'nor its legacy format; {size} bytes)')
    try:
        with zipfile.ZipFile(filename) as archive:
            bad_member = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f'its zip archive is unreadable ({err}; {size} bytes)'
    if bad_member is not None:
        return f'the data of {bad_member!r} fails its CRC check'
    if not any(name.endswith('/data.pkl') or name == 'data.pkl'
               for name in names):
        return 'its zip archive holds no data.pkl'
    return None


def corrupt_message(filename: str, problem: str) -> str:
    return (f'checkpoint {filename!r} is corrupt or truncated: '
            f'{problem.rstrip(".")}. '
            'It cannot be loaded (e.g. a run killed while saving it, or an '
            'incomplete copy); use an earlier checkpoint or copy it again.')


def _unsafe_message(filename: str, err: Exception) -> str:
    return (
        f'Refusing to load checkpoint {filename!r}: it contains pickled '
        f'objects outside the types an mmengine checkpoint needs ({err}). '
        'Loading it would run arbitrary code. If you trust the file, load '
        'it deliberately with `torch.load(path, weights_only=False)` and '
        're-save only its tensors (`torch.save({"state_dict": '
        'ckpt["state_dict"]}, new_path)`), or allow-list the specific type '
        'with `torch.serialization.add_safe_globals([...])`.')


def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's local checkpoint loader, always with ``weights_only=True``.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        CorruptCheckpointError: The file is empty, truncated or damaged.
        UnsafeCheckpointError: The (intact) file pickles a type outside the
            allow-list.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (diagnosed below, re-raised)
        problem = checkpoint_problem(filename)
        if problem is not None:
            raise CorruptCheckpointError(corrupt_message(
                filename, problem)) from err
        if isinstance(err, pickle.UnpicklingError) and \
                'Unsupported global' in str(err):
            raise UnsafeCheckpointError(_unsafe_message(filename,
                                                        err)) from err
        if isinstance(err, pickle.UnpicklingError) and \
                zipfile.is_zipfile(filename):
            # An intact archive whose pickle the safe unpickler refuses.
            raise UnsafeCheckpointError(_unsafe_message(filename,
                                                        err)) from err
        if isinstance(err, (EOFError, RuntimeError, KeyError,
                            pickle.UnpicklingError, ValueError)):
            raise CorruptCheckpointError(corrupt_message(
                filename, _reason(err))) from err
        raise


def _reason(err: Exception) -> str:
    """The error's own reason, without torch's advice to unpickle."""
    text = str(err)
    match = re.search(r'WeightsUnpickler error: (.*)', text)
    if match:
        text = match.group(1)
    elif 'weights_only' in text:
        text = ''
    text = text.strip().split('\n')[0].rstrip('.')
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def _checkpoint_number(path: str) -> int:
    match = _CHECKPOINT_NAME.search(osp.basename(path))
    return int(match.group(1)) if match else -1


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir`` a run could resume from, newest first.

    The one ``last_checkpoint`` names comes first, then ``iter_N.pth`` /
    ``epoch_N.pth`` by decreasing ``N``.
    """
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                   key=lambda p: (_checkpoint_number(p), osp.getmtime(p)),
                   reverse=True)
    found = [p for p in found if _checkpoint_number(p) >= 0]
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            last = f.read().strip()
        if last and osp.isfile(last):
            found = [last] + [p for p in found
                              if osp.abspath(p) != osp.abspath(last)]
    return found


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest intact checkpoint of ``work_dir`` (auto-resume).

    Damaged checkpoints are skipped with a warning each; none is deleted or
    modified.

    Returns:
        str | None: The checkpoint, or ``None`` if ``work_dir`` has none.

    Raises:
        CorruptCheckpointError: Checkpoints exist but none is intact (a fresh
            start would overwrite them: the choice is left to the user).
    """
    candidates = resume_candidates(work_dir) if osp.isdir(work_dir) else []
    skipped = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                warnings.warn(
                    f'auto-resume: skipped {len(skipped)} damaged '
                    f'checkpoint(s) ({"; ".join(skipped)}); resuming from '
                    f'the newest intact one, {path!r}')
            return path
        skipped.append(corrupt_message(path, problem))
    if skipped:
        raise CorruptCheckpointError(
            f'auto-resume: no intact checkpoint in {work_dir!r}: ' +
            '; '.join(skipped) + '. Remove the damaged files to start '
            'afresh, or give --resume PATH.')
    return None

