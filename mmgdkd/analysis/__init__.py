# Copyright (c) mmgdkd contributors. All rights reserved.
"""Analysis: a teacher's predictive distribution and its figures.

``distribution`` holds the pure computations on logits (no model, no data
set); ``teacher_rows`` runs a config's teacher over a data split,
``distribution_plots`` draws the figures and ``teacher_report`` ties them
together for ``tools/analysis/teacher_distribution.py``.
"""
from .distribution import (PERCENTILES, RowReservoir, distribution_stats,
                           format_summary, seg_rows, smallest_k_reaching)
from .teacher_report import analyse_teacher

__all__ = [
    'PERCENTILES', 'RowReservoir', 'analyse_teacher', 'distribution_stats',
    'format_summary', 'seg_rows', 'smallest_k_reaching'
]
