# Copyright (c) mmgdkd contributors. All rights reserved.
"""``tools/demo.py --quick`` end to end: data, runs, results and figure."""
import glob
import importlib.util
import json
import os.path as osp
import subprocess

import pytest
import torch
from mmengine.config import Config

pytestmark = pytest.mark.slow
DEMO_CONFIGS = ('teacher_pspnet_r18w32_synthetic.py',
                'pspnet_r18w16_synthetic.py',
                'gdkd_pspnet_r18w32-r18w16_synthetic.py',
                'kd_pspnet_r18w32-r18w16_synthetic.py',
                'dkd_pspnet_r18w32-r18w16_synthetic.py')
RUNS = ('teacher', 'student', 'gdkd')
QUICK_ITERS = 2


@pytest.fixture(scope='module')
def demo(tmp_path_factory, repo_root, python_env, python_exe):
    """One quick demo (teacher, baseline, GDKD) with paths under tmp."""
    root = tmp_path_factory.mktemp('demo')
    paths = dict(data=str(root / 'data'), work=str(root / 'work'),
                 out=str(root / 'out'))
    proc = subprocess.run(
        [python_exe, osp.join(repo_root, 'tools', 'demo.py'), '--quick',
         '--algos', 'gdkd', '--data-root', paths['data'], '--work-dir',
         paths['work'], '--out', paths['out']],
        cwd=str(root), env=python_env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return dict(paths, stdout=proc.stdout)


def test_data_is_read_by_cityscapes_dataset(demo):
    from mmseg.datasets import CityscapesDataset
    for split, num in (('train', 8), ('val', 4)):
        dataset = CityscapesDataset(
            data_root=demo['data'],
            data_prefix=dict(
                img_path=f'leftImg8bit/{split}',
                seg_map_path=f'gtFine/{split}'),
            pipeline=[dict(type='mmseg.LoadImageFromFile'),
                      dict(type='mmseg.LoadAnnotations')])
        assert len(dataset) == num
        sample = dataset[0]
        assert sample['img'].shape == (128, 256, 3)
        assert sample['gt_seg_map'].shape == (128, 256)
        assert set(sample['gt_seg_map'].ravel().tolist()) <= set(
            range(19)) | {255}


def test_every_run_leaves_a_checkpoint(demo):
    for run in RUNS:
        with open(osp.join(demo['work'], run, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        state = torch.load(checkpoint, map_location='cpu',
                           weights_only=False)['state_dict']
        # distilled checkpoints are plain MMSeg ones: student keys only
        assert 'decode_head.conv_seg.weight' in state
        assert not any(k.startswith(('teacher.', 'student.'))
                       for k in state)


def test_students_start_alike(demo, repo_root, tmp_path):
    """The baseline and a distilled run start from identical student weights
    (the shared init checkpoint, ``load_from``) and see the same batch."""
    from mmengine.runner import Runner

    def start(name, run, **options):
        cfg = Config.fromfile(osp.join(repo_root, 'configs', 'demo', name))
        cfg.merge_from_dict(dict(
            options,
            work_dir=str(tmp_path / run),
            load_from=osp.join(demo['work'], 'student_init.pth'),
            **{f'{split}_dataloader.dataset.data_root': demo['data']
               for split in ('train', 'val', 'test')}))
        runner = Runner.from_cfg(cfg)
        runner._init_model_weights()  # what Runner.train() does first
        runner.load_or_resume()
        batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
        return runner.model.state_dict(), batch['inputs'][0]

    base_state, base_input = start('pspnet_r18w16_synthetic.py', 'base')
    gdkd_state, gdkd_input = start(
        'gdkd_pspnet_r18w32-r18w16_synthetic.py', 'gdkd',
        **{'model.teacher_ckpt': osp.join(demo['work'], 'teacher',
                                          f'iter_{QUICK_ITERS}.pth')})
    assert base_state.keys() == gdkd_state.keys()
    for key, value in base_state.items():
        assert torch.equal(value, gdkd_state[key]), key
    assert torch.equal(base_input, gdkd_input)
    # the run itself logged the shared start
    for run in ('student', 'gdkd'):
        log, = glob.glob(osp.join(demo['work'], run, '*', '*.log'))
        with open(log) as f:
            assert 'Load checkpoint from ' + osp.join(
                demo['work'], 'student_init.pth') in f.read()


def test_results_files(demo):
    with open(osp.join(demo['out'], 'results.json')) as f:
        results = json.load(f)
    assert results['seed'] == 0 and results['quick'] is True
    runs = {r['name']: r for r in results['runs']}
    assert tuple(runs) == RUNS
    for run in runs.values():
        for key in ('mIoU', 'mAcc', 'aAcc'):
            assert isinstance(run[key], (int, float))
            assert 0 <= run[key] <= 100, (run['name'], key, run[key])
        assert run['ms_per_image'] > 0
        assert osp.isfile(run['checkpoint'])
    # same student architecture, a wider teacher
    assert runs['gdkd']['params_M'] == runs['student']['params_M']
    assert runs['teacher']['params_M'] > 2 * runs['student']['params_M']
    with open(osp.join(demo['out'], 'results.md')) as f:
        table = f.read()
    for label in ('| model | mIoU | mAcc', 'teacher', 'student', 'GDKD'):
        assert label in table
    assert 'GDKD' in demo['stdout'] and '[gdkd] iter' in demo['stdout']


def test_figure_is_a_png(demo):
    import matplotlib.image as mpimg
    path = osp.join(demo['out'], 'predictions.png')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    height, width = mpimg.imread(path).shape[:2]
    # 3 rows x 5 columns (image, ground truth, teacher, student, GDKD)
    assert width >= 800 and 300 <= height < width


@pytest.mark.parametrize('name', DEMO_CONFIGS)
def test_demo_configs_inherit_the_real_ones(repo_root, name):
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'demo', name))
    assert cfg.randomness.seed == 0
    assert cfg.train_dataloader.num_workers == 0
    if name.startswith(('gdkd', 'kd', 'dkd')):
        algo = name.split('_')[0]
        real = Config.fromfile(
            osp.join(repo_root, 'configs', algo,
                     'pspnet_r101_r18_cityscapes.py'))
        assert cfg.model.distill_losses == real.model.distill_losses
        assert cfg.model.head_weights == real.model.head_weights
        # the student is the baseline config's model itself
        assert cfg.model.student.cfg_path.endswith(
            'pspnet_r18w16_synthetic.py')
        # the runner hands this to the distiller: it must fit the student
        assert tuple(cfg.data_preprocessor.size) == tuple(cfg.crop_size)
    else:
        assert cfg.model.type == 'EncoderDecoder'
        assert cfg.model.pretrained is None
        assert cfg.model.backbone.norm_cfg.type == 'BN'


def load_demo_tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'demo_tool', osp.join(repo_root, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('threads', [1, 2])
def test_train_pins_the_run_threads(repo_root, tmp_path, monkeypatch,
                                    threads):
    """Every run gets a fixed thread count (so its numbers do not depend on
    the machine's cores) and reports its checkpoint and val metrics."""
    tool = load_demo_tool(repo_root)
    work_dir = tmp_path / 'run'
    (work_dir / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_2.pth'))
    (work_dir / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(dict(loss=1.0, step=2)) + '\n' +
        json.dumps(dict(aAcc=50.0, mIoU=12.5, mAcc=20.0, step=2)) + '\n')
    seen = {}

    class FakeRun:
        def __init__(self, cmd, env, **kwargs):
            seen.update(cmd=cmd, env=env)
            self.stdout = iter(
                ['Iter(train) [2/2]  loss: 0.5  eta: 0:00:00\n'])

        def wait(self):
            return 0

    monkeypatch.setattr(tool.subprocess, 'Popen', FakeRun)
    run = tool.train('gdkd', 'cfg.py', str(work_dir), ['a=1'], threads)
    assert seen['env']['OMP_NUM_THREADS'] == str(threads)
    assert seen['env']['MKL_NUM_THREADS'] == str(threads)
    assert seen['cmd'][-3:] == [str(work_dir), '--cfg-options', 'a=1']
    assert (run['mIoU'], run['mAcc'], run['checkpoint']) == (
        12.5, 20.0, str(work_dir / 'iter_2.pth'))


def test_quick_demo_runs_students_one_thread_each(demo):
    assert '(2 threads)' in demo['stdout'].split('[teacher] python')[1]
    for run in ('student', 'gdkd'):
        line = demo['stdout'].split(f'[{run}] python')[1].splitlines()[0]
        assert line.endswith('(1 thread)'), line
