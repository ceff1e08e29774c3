"""Where a plot is drawn: the user's Axes, a PNG file, or a new pyplot figure; never a change of matplotlib's
backend (``matplotlib.use``), so plotting from diffsolve leaves a notebook's inline backend as it was."""

from __future__ import annotations

from pathlib import Path

from .errors import DiffsolveError

__all__ = ["plot_into"]


def plot_into(draw, path=None, ax=None, figsize=(6.4, 4.8), dpi: int = 120):
    """Call ``draw(ax)`` on ``ax`` when given, else on a new figure, and save it to ``path`` when given.

    With a ``path`` and no ``ax`` the figure is a ``matplotlib.figure.Figure`` on its own Agg canvas (pyplot's
    backend and figure list are untouched) and the path is returned; with ``ax`` the drawing goes into the caller's
    figure (saved to ``path`` too when given) and ``ax`` is returned; with neither, a new pyplot figure (shown by the
    user's backend) and its Axes are returned."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DiffsolveError("plotting needs matplotlib: pip install 'diffsolve[plot]'") from None
    if ax is not None:
        if not hasattr(ax, "loglog"):
            raise DiffsolveError(f"ax must be a matplotlib Axes (e.g. from plt.subplots()), got {type(ax).__name__}; "
                                 "pass one, or ax=None for a new figure")
        draw(ax)
        if path is not None:
            ax.figure.savefig(path, dpi=dpi)
        return ax
    if path is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=figsize)
        draw(ax)
        fig.tight_layout()
        return ax
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)
