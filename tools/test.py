# Copyright (c) mmgdkd contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with a config's test loop.

For a distillation config the student alone is evaluated: distilled
checkpoints hold plain student weights, and the teacher is never built (no
teacher download). Same flags as MMSeg's ``tools/test.py``.
"""
import argparse
import os

import mmgdkd  # noqa: F401  (compat shims + registration, before the hosts)
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmgdkd.utils import (check_data_folders, default_work_dir,
                          prepare_cpu_distributed, student_cfg,
                          teardown_distributed)
from mmgdkd.utils.data_check import TEST_LOADERS
from mmgdkd.utils.known_warnings import silence_known_deprecations


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='dir for the evaluation results and logs')
    parser.add_argument(
        '--out', help='dir to save raw predictions for offline evaluation '
        '(segmentation) or a pickle file of results (classification)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir', help='dir where painted images are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config (key=value pairs)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need a VisualizationHook in '
                           'default_hooks')
    hooks.visualization.draw = True
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = args.show_dir


def main() -> None:
    silence_known_deprecations()
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    cfg.load_from = args.checkpoint

    if student_cfg(cfg):
        print_log('Distillation config: evaluating the student alone',
                  logger='current')
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        if cfg.get('default_scope') == 'mmpretrain':
            cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
                cfg.test_evaluator, dict) else list(cfg.test_evaluator)
            cfg.test_evaluator.append(
                dict(type='DumpResults', out_file_path=args.out))
        else:
            cfg.test_evaluator['output_dir'] = args.out
            cfg.test_evaluator['keep_results'] = True

    check_data_folders(cfg, TEST_LOADERS)
    prepare_cpu_distributed(cfg)
    runner = (Runner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
