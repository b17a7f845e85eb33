# Copyright (c) mmgdkd contributors. All rights reserved.
"""Analysis helpers: statistics of a teacher's predictive distribution.

Pure computations on logits (no model, no data set); the tools under
``tools/analysis/`` do the I/O and the plotting.
"""
from .distribution import (PERCENTILES, RowReservoir, distribution_stats,
                           format_summary, seg_rows, smallest_k_reaching)

__all__ = [
    'PERCENTILES', 'RowReservoir', 'distribution_stats', 'format_summary',
    'seg_rows', 'smallest_k_reaching'
]
