# Copyright (c) mmgdkd contributors. All rights reserved.
"""Checkpoint loading: damaged files named as such, unsafe ones refused,
auto-resume falls back to the newest intact checkpoint and writes nothing."""
import hashlib
import os
import os.path as osp
import pickle
import zipfile

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmgdkd.engine.checkpoint import (CorruptCheckpointError,
                                      UnsafeCheckpointError,
                                      checkpoint_problem,
                                      find_resumable_checkpoint,
                                      resume_candidates)


class _Arbitrary:

    def __reduce__(self):
        return (os.getcwd, ())


def _save(path, **extra) -> str:
    torch.save({'state_dict': {'w': torch.arange(4000.)}, 'meta': {'iter': 1},
                **extra}, path)
    return str(path)


def _truncate(path, keep=0.5) -> str:
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    return str(path)


def _flip_pickle_byte(path) -> str:
    """Damage data.pkl inside an otherwise complete archive."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist()
                    if i.filename.endswith('data.pkl'))
    data = bytearray(open(path, 'rb').read())
    # local header: 30 bytes + name + extra, then the stored member
    start = info.header_offset + 30 + len(info.filename.encode()) + \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30],
                       'little')
    data[start + 5] ^= 0xFF
    open(path, 'wb').write(bytes(data))
    return str(path)


def _sha(path) -> str:
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def _load(path):
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


@pytest.mark.parametrize('damage,problem', [
    (lambda p: open(p, 'wb').close(), 'the file is empty (0 bytes)'),
    (_truncate, 'its zip archive is unreadable'),
    (lambda p: open(p, 'wb').write(b'not a checkpoint' * 8),
     'it is not a PyTorch checkpoint'),
    (_flip_pickle_byte, "fails its CRC check"),
])
def test_damaged_file_is_named_corrupt_never_unsafe(tmp_path, damage,
                                                    problem):
    path = _save(tmp_path / 'iter_4.pth')
    damage(path)
    with pytest.raises(CorruptCheckpointError) as info:
        _load(path)
    message = str(info.value)
    assert message.startswith(f"checkpoint '{path}' is corrupt or truncated")
    assert problem in message
    # no advice to unpickle a damaged file, and not an unpickling error
    assert 'weights_only' not in message
    assert 'arbitrary code' not in message
    assert not isinstance(info.value, pickle.UnpicklingError)
    assert checkpoint_problem(path) is not None


def test_truncated_legacy_format_is_corrupt(tmp_path):
    path = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.ones(3)}, path,
               _use_new_zipfile_serialization=False)
    assert checkpoint_problem(path) is None
    _truncate(path, keep=0.9)
    with pytest.raises(CorruptCheckpointError, match='corrupt or truncated'):
        _load(path)


def test_intact_file_with_unsafe_object_keeps_the_unsafe_message(tmp_path):
    path = _save(tmp_path / 'evil.pth', payload=_Arbitrary())
    assert checkpoint_problem(path) is None
    with pytest.raises(UnsafeCheckpointError) as info:
        _load(path)
    assert 'arbitrary code' in str(info.value)
    assert 'weights_only=False' in str(info.value)
    assert 'corrupt' not in str(info.value)


def test_intact_checkpoint_loads(tmp_path):
    path = _save(tmp_path / 'ok.pth')
    assert checkpoint_problem(path) is None
    assert torch.equal(_load(path)['state_dict']['w'], torch.arange(4000.))


def _work_dir(tmp_path, damaged=(4, )):
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    paths = {n: _save(work_dir / f'iter_{n}.pth') for n in (2, 4)}
    for n in damaged:
        _truncate(paths[n])
    (work_dir / 'last_checkpoint').write_text(paths[4])
    return str(work_dir), paths


def test_auto_resume_falls_back_to_the_newest_intact(tmp_path):
    work_dir, paths = _work_dir(tmp_path)
    before = {p: _sha(p) for p in paths.values()}
    assert resume_candidates(work_dir) == [paths[4], paths[2]]
    with pytest.warns(UserWarning) as record:
        assert find_resumable_checkpoint(work_dir) == paths[2]
    message = str(record[0].message)
    assert f"'{paths[4]}' is corrupt or truncated" in message
    assert f"resuming from the newest intact one, '{paths[2]}'" in message
    # nothing was removed or rewritten
    assert {p: _sha(p) for p in paths.values()} == before


def test_auto_resume_uses_the_latest_when_intact(tmp_path, recwarn):
    work_dir, paths = _work_dir(tmp_path, damaged=())
    assert find_resumable_checkpoint(work_dir) == paths[4]
    assert not [w for w in recwarn if 'auto-resume' in str(w.message)]
    assert find_resumable_checkpoint(str(tmp_path / 'empty')) is None


def test_auto_resume_without_intact_checkpoint_stops(tmp_path):
    work_dir, paths = _work_dir(tmp_path, damaged=(2, 4))
    before = {p: _sha(p) for p in paths.values()}
    with pytest.raises(CorruptCheckpointError,
                       match='auto-resume: no intact checkpoint'):
        find_resumable_checkpoint(work_dir)
    assert {p: _sha(p) for p in paths.values()} == before
    assert osp.isfile(osp.join(work_dir, 'last_checkpoint'))
