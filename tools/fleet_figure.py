"""The README's fleet picture: a fleet report's per-bag table (worst first) and its per-bag
MaxF histogram, side by side, from ``OUT/metrics.json`` of ``seg_bag eval --bags``.

    python -m bench.bench_fleet --keep /tmp/fleet
    python tools/fleet_figure.py /tmp/fleet/out_w2 --out docs/fleet_report.png
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('report', help='a fleet output folder (with metrics.json)')
    p.add_argument('--out', default='docs/fleet_report.png')
    args = p.parse_args(argv)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    doc = json.loads((pathlib.Path(args.report) / 'metrics.json').read_text())
    rows = [[b['name'], b['status'], str(b['frames']),
             '-' if b.get('MaxF') is None else f'{b["MaxF"]:.4f}',
             '-' if b.get('IoU') is None else f'{b["IoU"]:.4f}',
             '-' if b.get('fps') is None else f'{b["fps"]:.1f}'] for b in doc['bags']]
    fig = Figure(figsize=(11.0, 0.32 * len(rows) + 1.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.02, 0.55, 0.86))
    ax.axis('off')
    table = ax.table(cellText=rows, colLabels=['bag', 'status', 'frames', 'MaxF', 'IoU', 'fps'],
                     loc='upper center', cellLoc='center')
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    nan = float('nan')
    ax.set_title(f'Fleet: {doc["bags_ok"]}/{doc["bags_total"]} bags, {doc["frames"]} frames, '
                 f'MaxF {doc.get("MaxF", nan):.4f}, IoU {doc.get("IoU", nan):.4f} '
                 '(summed counts)', fontsize=10)
    hist = fig.add_axes((0.62, 0.14, 0.36, 0.72))
    maxf = np.array([b['MaxF'] for b in doc['bags'] if b.get('MaxF') is not None])
    hist.hist(maxf, bins=20, range=(min(maxf.min(), 0.9), 1.0), color='#7a4fb5',
              edgecolor='black')
    hist.set_xlabel('MaxF per bag')
    hist.set_ylabel('bags')
    hist.grid(True, alpha=0.3)
    fig.savefig(args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
