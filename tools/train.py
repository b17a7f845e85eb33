# Copyright (c) mmgdkd contributors. All rights reserved.
"""Train a model from a config: distillation or plain MMSeg/MMPretrain.

Same flags as MMSeg's and MMPretrain's ``tools/train.py``.
"""
import argparse
import logging
import os

import mmgdkd  # noqa: F401  (compat shims + registration, before the hosts)
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmgdkd.engine.checkpoint import find_resumable_checkpoint
from mmgdkd.engine.resume import check_resume_setup
from mmgdkd.utils import (check_data_folders, default_work_dir,
                          prepare_cpu_distributed, teardown_distributed)
from mmgdkd.utils.data_check import TRAIN_LOADERS
from mmgdkd.utils.known_warnings import silence_known_deprecations


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train (distil) a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from the newest intact checkpoint in the work dir '
        '(damaged ones are skipped with a warning), or from the given '
        'checkpoint')
    parser.add_argument(
        '--resume-any-setup',
        action='store_true',
        help='resume even if the checkpoint was written for another model '
        'pair, teacher checkpoint or distillation loss setup (refused by '
        'default)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, e.g. '
        'model.warmup_iters=1000 train_dataloader.batch_size=4')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed launchers may pass --local-rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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

    if args.amp:
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.resume == 'auto':
        # None: nothing to resume, a fresh start (as mmengine's auto-resume)
        cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume') and cfg.get('load_from') and \
            not args.resume_any_setup:
        check_resume_setup(cfg, cfg.load_from)

    check_data_folders(cfg, TRAIN_LOADERS)
    prepare_cpu_distributed(cfg)
    runner = (Runner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
