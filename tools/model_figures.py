"""Figures for docs/: converted Cityscapes masks, and two models side by side on frames.

    python tools/model_figures.py cityscapes --out docs/cityscapes_masks.jpg
    python tools/model_figures.py curves --log runs/road/log.csv --out docs/training_curves.png
    python tools/model_figures.py compare --old OLD.segmodel \
        --new models/road_fcn8s_vgg16.segmodel \
        --frames ../shared/data/kitti_road/testing/image_2 --out docs/kitti_testing_old_vs_new.jpg

Each model runs at its own card geometry and threshold; tiles are overlays (road magenta).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / 'shared' / 'data'


def cityscapes(args: argparse.Namespace) -> None:
    """Frame | label half (widened) | converted target, for a few fixed val frames."""
    import cv2

    from seg_perception.core.image_io import IGNORE, read_rgb, write_rgb
    from seg_perception.datasets import open_dataset
    from seg_perception.datasets.cityscapes import split_pair
    from seg_perception.evaluation.plots import contact_sheet

    ds = open_dataset('cityscapes', args.data_dir, 'val')
    tiles, captions = [], []
    for i in args.indices:
        sample = ds[i]
        _, label = split_pair(read_rgb(ds.items[i].image))
        label = cv2.resize(label, (512, 256), interpolation=cv2.INTER_NEAREST)
        target = np.zeros_like(sample.image)
        target[sample.target == 1] = (255, 0, 255)
        target[sample.target == 0] = (255, 0, 0)
        target[sample.target == IGNORE] = (0, 0, 0)
        tiles += [sample.image, label, target]
        captions += [f'{sample.name} frame (512x256)', 'colour label', 'road / not road / ignore']
    write_rgb(args.out, contact_sheet(tiles, columns=3, tile_width=512, captions=captions))
    print(f'wrote {args.out}')


def compare(args: argparse.Namespace) -> None:
    """Overlays of the old and the new model per frame, old left, new right."""
    from seg_perception.core.image_io import read_rgb, write_rgb
    from seg_perception.datasets.base import list_images
    from seg_perception.evaluation.plots import contact_sheet
    from seg_perception.runtime.pipeline import Pipeline
    from seg_perception.runtime.segmenter import Segmenter

    frames = list_images(pathlib.Path(args.frames))[:args.limit]
    models = [(label, Pipeline(Segmenter(path)))
              for label, path in (('old', args.old), ('new', args.new))]
    tiles, captions = [], []
    for n, path in enumerate(frames, 1):
        image = read_rgb(path)
        for label, seg in models:
            result = seg.run([image])[0]
            tiles.append(seg.overlay(image, result.labels))
            captions.append(f'{path.stem} {label}')
        print(f'\r{n}/{len(frames)} frames', end='', file=sys.stderr, flush=True)
    print(file=sys.stderr)
    write_rgb(args.out, contact_sheet(tiles, columns=4, tile_width=args.tile_width,
                                      captions=captions))
    print(f'wrote {args.out}')


def curves(args: argparse.Namespace) -> None:
    """Per-source validation MaxF and IoU per epoch from a run's log.csv (one PNG)."""
    import csv

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(args.log)))
    epochs = [int(r['epoch']) + 1 for r in rows]
    sources = sorted({k[4:-5] for k in rows[0] if k.startswith('val_') and k.endswith('_MaxF')
                      and k != 'val_MaxF'})
    fig, (ax_f, ax_i, ax_l) = plt.subplots(1, 3, figsize=(13, 3.6))
    for src in sources:
        ax_f.plot(epochs, [float(r[f'val_{src}_MaxF']) for r in rows], marker='o', label=src)
        ax_i.plot(epochs, [float(r[f'val_{src}_IoU']) for r in rows], marker='o', label=src)
    ax_f.plot(epochs, [float(r['val_MaxF']) for r in rows], 'k--', label='mean (selection)')
    ax_l.plot(epochs, [float(r['loss']) for r in rows], marker='o', color='gray')
    for ax, title in ((ax_f, 'validation MaxF'), (ax_i, 'validation IoU'),
                      (ax_l, 'training loss')):
        ax.set_title(title)
        ax.set_xlabel('epoch (400 steps of 4 crops)')
        ax.grid(alpha=0.3)
    ax_f.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f'wrote {args.out}')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('cityscapes', help='converted Cityscapes masks')
    c.add_argument('--data-dir', default=str(SHARED / 'cityscapes_pix2pix'))
    c.add_argument('--indices', type=int, nargs='+', default=[0, 5, 17, 40])
    c.add_argument('--out', required=True)
    m = sub.add_parser('compare', help='old vs new model overlays')
    m.add_argument('--old', required=True)
    m.add_argument('--new', required=True)
    m.add_argument('--frames', default=str(SHARED / 'kitti_road' / 'testing' / 'image_2'))
    m.add_argument('--limit', type=int, default=30)
    m.add_argument('--tile-width', type=int, default=480)
    m.add_argument('--out', required=True)
    c = sub.add_parser('curves', help='per-source validation curves of a run')
    c.add_argument('--log', required=True, help="the run's log.csv")
    c.add_argument('--out', required=True)
    args = p.parse_args(argv)
    {'cityscapes': cityscapes, 'compare': compare, 'curves': curves}[args.cmd](args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
