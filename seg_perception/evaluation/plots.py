"""Pictures people look at: precision-recall curves and contact sheets of frames.

Plots are drawn on a matplotlib ``Figure`` with the Agg canvas created inside the function
(no pyplot, no global backend switch), so this works headless and in threads.
"""
from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

Curves = Mapping[str, Any]  # RoadEvaluator.curves(): 'precision', 'recall', 'F' (arrays of 256)


def _runs(curves: Curves | Sequence[tuple[str, Curves]]) -> list[tuple[str, Curves]]:
    if isinstance(curves, Mapping):
        return [('', curves)]
    runs = list(curves)
    if not runs:
        raise ValueError('no curves to plot')
    for run in runs:
        if (not isinstance(run, (tuple, list)) or len(run) != 2
                or not isinstance(run[1], Mapping)):
            raise ValueError('curves must be a curves dict or a list of (label, curves dict)')
    return [(str(label), c) for label, c in runs]


def save_pr_curve(curves: Curves | Sequence[tuple[str, Curves]], path: str | os.PathLike,
                  title: str = '') -> pathlib.Path:
    """Write a precision-recall plot (PNG, or any format matplotlib knows by extension).

    Args:
        curves: a :meth:`seg_perception.core.metrics.RoadEvaluator.curves` dict (arrays
            ``precision``, ``recall`` and ``F`` over the 256 thresholds), or a list of
            ``(label, curves dict)`` to compare several runs in one plot.
        path: output file; parent folders are created.
        title: plot title.

    Returns:
        The written path. Each curve's MaxF operating point is marked and its value given in
        the legend; points with precision = recall = 0 are left out, as in the KITTI devkit.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = _runs(curves)
    fig = Figure(figsize=(6.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, c in runs:
        precision = np.asarray(c['precision'], np.float64)
        recall = np.asarray(c['recall'], np.float64)
        if precision.shape != recall.shape or precision.ndim != 1:
            raise ValueError(f'precision {precision.shape} and recall {recall.shape} must be '
                             'equal-length 1-D arrays')
        f = np.asarray(c['F'], np.float64) if 'F' in c else (
            2 * precision * recall / (precision + recall + 1e-10))
        keep = ~((precision == 0) & (recall == 0))
        k = int(np.argmax(f))
        name = f'{label} ' if label else ''
        (line,) = ax.plot(recall[keep], precision[keep], linewidth=1.5,
                          label=f'{name}MaxF {100 * f[k]:.2f}%')
        ax.plot([recall[k]], [precision[k]], marker='o', markersize=7, linestyle='none',
                color=line.get_color(), markeredgecolor='black', clip_on=False)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower left')
    if title:
        ax.set_title(title)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def save_histogram(values: Sequence[float], path: str | os.PathLike, title: str = '',
                   xlabel: str = '', bins: int = 20,
                   value_range: tuple[float, float] | None = None) -> pathlib.Path:
    """Write a histogram of ``values`` (PNG); bars count values per bin of ``value_range``
    (default: the values' own range). Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(np.asarray(values, np.float64), bins=bins, range=value_range, color='#7a4fb5',
            edgecolor='black')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('count')
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return path


def contact_sheet(images: Sequence[np.ndarray], columns: int = 4, tile_width: int = 320,
                  captions: Sequence[str] | None = None) -> np.ndarray:
    """Lay frames out in a grid, each scaled to ``tile_width`` pixels wide.

    Args:
        images: frames, each (H_i, W_i, 3) uint8 RGB (or (H_i, W_i) uint8 gray).
        columns: tiles per row (>= 1).
        tile_width: tile width in pixels (>= 16); heights keep each frame's aspect ratio and
            every tile is as tall as the tallest scaled frame (black filler below).
        captions: optional text per frame, drawn at the bottom-left of its tile.

    Returns:
        (rows * tile_height, min(columns, N) * tile_width, 3) uint8 RGB.
    """
    if not images:
        raise ValueError('contact sheet needs at least one image')
    if int(columns) < 1 or int(tile_width) < 16:
        raise ValueError(f'columns must be >= 1 and tile_width >= 16, got {columns}, '
                         f'{tile_width}')
    if captions is not None and len(captions) != len(images):
        raise ValueError(f'{len(captions)} captions for {len(images)} images')
    columns, tile_width = int(columns), int(tile_width)
    tiles = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3
                                                                and image.shape[2] == 3)):
            raise ValueError(f'image {i} must be HxWx3 or HxW uint8, got {image.shape} '
                             f'{image.dtype}')
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        h, w = image.shape[:2]
        th = max(1, round(h * tile_width / w))
        interp = cv2.INTER_AREA if w > tile_width else cv2.INTER_LINEAR
        tiles.append(cv2.resize(image, (tile_width, th), interpolation=interp))
    tile_h = max(t.shape[0] for t in tiles)
    rows = math.ceil(len(tiles) / columns)
    sheet = np.zeros((rows * tile_h, min(columns, len(tiles)) * tile_width, 3), np.uint8)
    for i, tile in enumerate(tiles):
        y, x = (i // columns) * tile_h, (i % columns) * tile_width
        sheet[y:y + tile.shape[0], x:x + tile_width] = tile
        if captions is not None and captions[i]:
            _caption(sheet[y:y + tile_h, x:x + tile_width], str(captions[i]))
    return sheet


def _caption(tile: np.ndarray, text: str) -> None:
    """Draw ``text`` white on a black band at the bottom-left of ``tile`` (a view; in place)."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = max(0.4, tile.shape[1] / 640.0)
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = 3
    y1 = tile.shape[0]
    y0 = max(0, y1 - th - base - 2 * pad)
    tile[y0:y1, :min(tile.shape[1], tw + 2 * pad)] = 0
    cv2.putText(tile, text, (pad, y1 - base - pad), font, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
