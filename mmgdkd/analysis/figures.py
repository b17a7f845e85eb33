# Copyright (c) mmgdkd contributors. All rights reserved.
"""Figures without pyplot: no global state, no GUI backend.

The analysis functions draw on a standalone ``matplotlib.figure.Figure``,
which renders PNGs with Agg whatever backend the caller's process uses,
and is freed with its last reference (no ``plt.close``).
"""
from typing import Any, Tuple


def subplots(*args, figsize: Tuple[float, float], **kwargs) -> Tuple[Any,
                                                                    Any]:
    """``matplotlib.pyplot.subplots`` on a standalone figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def color_cycle() -> list:
    """The default property cycle's colours."""
    import matplotlib
    return matplotlib.rcParams['axes.prop_cycle'].by_key()['color']
