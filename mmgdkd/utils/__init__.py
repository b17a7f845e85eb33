# Copyright (c) mmgdkd contributors. All rights reserved.
from .data_check import check_data_folders
from .run_config import (default_work_dir, is_distiller_cfg,
                         materialize_distiller_cfg, prepare_cpu_distributed,
                         replace_sync_bn, student_cfg, teardown_distributed)

__all__ = [
    'check_data_folders', 'default_work_dir', 'is_distiller_cfg',
    'materialize_distiller_cfg', 'prepare_cpu_distributed', 'replace_sync_bn',
    'student_cfg', 'teardown_distributed'
]
