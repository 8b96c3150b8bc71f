"""``make demo``: the real node on real frames, end to end, with pictures and numbers.

For each camera stream (CamVid val sequence 0016E5 with ground truth, and the KITTI Road
testing frames), the demo

1. builds a rosbag2 from the frames (``seg_bag make``),
2. starts the real ``road_segmentation`` node (real DDS) with the shipped default model and
   config/road.yaml in its own namespace,
3. streams the frames into it at camera rate and records what it publishes
   (``seg_bag live``: latency, drops, accuracy against ground truth),
4. stops the node (SIGINT, exit 0 expected) and writes ``demo_out/``: overlay PNGs, a
   contact sheet, an MP4 per stream, metrics and ``summary.md``.

Frames come from ../shared/data when present, else from demo/frames/ in this repository.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

import numpy as np

from seg_perception.bag import bagfile
from seg_perception.bag import topics as bag_topics
from seg_perception.bag.bagfile import BagError
from seg_perception.bag.make import MakeOptions, make_bag
from seg_perception.cli.common import run_cli, setup_logging
from seg_perception.core.image_io import read_rgb, write_rgb
from seg_perception.core.image_msgs import decode_image
from seg_perception.core.share import DEFAULT_MODEL, SOURCE_ROOT
from seg_perception.evaluation.plots import contact_sheet
from seg_perception.ros.dds_env import use_large_image_profile
from seg_perception.ros.live_replay import LiveOptions, run_live
from seg_perception.ros.node_process import NodeProcess, ros_arguments

PROG = 'make demo'
LOG = logging.getLogger('seg_perception.cli.demo')
SHARED = pathlib.Path(os.environ.get('SEG_SHARED_DATA', SOURCE_ROOT.parent / 'shared' / 'data'))


class DemoError(RuntimeError):
    """The demo cannot run (one readable line)."""


@dataclasses.dataclass
class Stream:
    """One camera stream of the demo."""

    name: str
    images: pathlib.Path
    labels: pathlib.Path | None
    label_format: str | None
    limit: int
    node_params: dict[str, Any]
    source: str


def find_streams(camvid_frames: int, kitti_frames: int) -> list[Stream]:
    """CamVid and KITTI streams from ../shared/data, else from demo/frames/."""
    streams = []
    shipped = SOURCE_ROOT / 'demo' / 'frames'
    camvid = SHARED / 'camvid'
    if not (camvid / 'val').is_dir():
        camvid = shipped / 'camvid'
    if (camvid / 'val').is_dir():
        streams.append(Stream('camvid', camvid / 'val', camvid / 'valannot', 'camvid',
                              camvid_frames, {}, str(camvid)))
    kitti = SHARED / 'kitti_road' / 'testing' / 'image_2'
    if not kitti.is_dir():
        kitti = shipped / 'kitti' / 'testing' / 'image_2'
    if kitti.is_dir():
        # The default model's card geometry (fit: height 192, aspect kept) serves both.
        streams.append(Stream('kitti', kitti, None, None, kitti_frames, {}, str(kitti)))
    if not streams:
        raise DemoError(f'no frames found in {SHARED} or {shipped}')
    return streams


def extract_overlays(recorded: pathlib.Path, topic: str) -> list[np.ndarray]:
    """Overlay images (H, W, 3) uint8 RGB published by the node, in stamp order."""
    reader = bagfile.BagReader(recorded)
    try:
        msgs = [reader.deserialize(raw, mt) for _, mt, _, raw in reader.messages({topic})]
    finally:
        reader.close()
    msgs.sort(key=lambda m: bag_topics.stamp_ns(m.header))
    return [decode_image(m) for m in msgs]


def write_video(frames: list[np.ndarray], path: pathlib.Path, fps: float) -> bool:
    """Write RGB frames as an MP4 (mp4v); returns False if OpenCV cannot encode it."""
    import cv2
    if not frames:
        return False
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    if not writer.isOpened():
        return False
    for f in frames:
        writer.write(cv2.cvtColor(cv2.resize(f, (w, h)), cv2.COLOR_RGB2BGR))
    writer.release()
    return path.is_file() and path.stat().st_size > 0


def run_stream(stream: Stream, model: pathlib.Path, params_file: pathlib.Path,
               out: pathlib.Path, work: pathlib.Path, rate: float) -> dict[str, Any]:
    """Bag -> node -> live replay -> overlays for one stream; returns its summary row."""
    ns = f'/demo/{stream.name}'
    bag = make_bag(stream.images, work / f'{stream.name}_bag', stream.labels,
                   stream.label_format,
                   MakeOptions(rate=rate, topic=f'{ns}/image', limit=stream.limit,
                               frame_id=f'{stream.name}_camera'))
    LOG.info('%s: %d frames from %s at %g Hz', stream.name, bag['frames'], stream.source, rate)
    dest = out / stream.name
    params = {'model_path': str(model), 'publish_probability': True, **stream.node_params}
    node = NodeProcess([sys.executable, '-m', 'seg_perception.ros.node'],
                       ros_arguments([params_file], params, namespace=ns),
                       name=f'{stream.name}_node', log_path=out / f'{stream.name}_node.log')
    try:
        doc = run_live(bag['path'], dest, LiveOptions(rate=1.0, timeout=180.0,
                                                      record_overlay=True))
    finally:
        rc = node.stop(raise_on_kill=False)
    if rc != 0:
        raise DemoError(f'the node exited with {rc}; see {node.log_path}')
    overlays = extract_overlays(dest / 'recorded', f'{ns}/road/overlay')
    for i, image in enumerate(overlays):
        write_rgb(dest / 'overlays' / f'{i:04d}.png', image)
    write_video(overlays, dest / 'overlay.mp4', fps=rate)
    if overlays:
        pick = [overlays[i] for i in np.linspace(0, len(overlays) - 1, 4).astype(int)]
        write_rgb(dest / 'contact_sheet.png', contact_sheet(pick, columns=4, tile_width=320))
    lat = doc['latency_ms']['header_to_receive']
    acc = doc.get('accuracy', {})
    duration = max(1e-9, doc['frames_published'] / rate)
    return {'stream': stream.name, 'frames': doc['frames_published'],
            'outputs': doc['outputs_received'], 'fps': doc['outputs_received'] / duration,
            'latency_p50_ms': lat.get('p50'), 'latency_p95_ms': lat.get('p95'),
            'dropped': doc['dropped_frames'], 'road_IoU': acc.get('IoU'),
            'MaxF': acc.get('MaxF'), 'overlays': len(overlays), 'source': stream.source,
            'pick': [str(dest / 'overlays' / f'{i:04d}.png') for i in
                     np.linspace(0, max(0, len(overlays) - 1), 4).astype(int)]
            if overlays else []}


def _fmt(v: Any, spec: str) -> str:
    return '-' if v is None else format(v, spec)


def summary_markdown(rows: list[dict[str, Any]], model: pathlib.Path, elapsed: float) -> str:
    """The one-screen summary."""
    lines = ['# seg_perception demo', '',
             f'Model: `{model}`; real node over real DDS; {elapsed:.0f} s in all.', '',
             '| stream | frames | outputs | fps | latency p50 (ms) | latency p95 (ms) | '
             'dropped | road IoU | MaxF |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['stream']} | {r['frames']} | {r['outputs']} | "
                     f"{r['fps']:.1f} | {_fmt(r['latency_p50_ms'], '.0f')} | "
                     f"{_fmt(r['latency_p95_ms'], '.0f')} | {r['dropped']} | "
                     f"{_fmt(r['road_IoU'], '.3f')} | {_fmt(r['MaxF'], '.3f')} |")
    lines += ['', 'Latency = time the label arrived minus the frame header stamp (capture '
              'time). Dropped = frames the node skipped because a newer one had arrived '
              '(it never queues stale frames). IoU/MaxF against ground truth where it exists '
              '(CamVid), from the published road/probability.', '',
              'Pictures: `contact_sheet.png`, `<stream>/overlays/`, `<stream>/overlay.mp4`; '
              'details: `<stream>/report.md`, `<stream>/metrics.json`, `<stream>/frames.csv`.']
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m seg_perception.cli.demo``."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='demo_out', help='output folder (default demo_out)')
    p.add_argument('--model', default=str(DEFAULT_MODEL))
    p.add_argument('--params', default=str(SOURCE_ROOT / 'config' / 'road.yaml'))
    p.add_argument('--rate', type=float, default=5.0, help='camera rate in Hz (default 5)')
    p.add_argument('--camvid-frames', type=int, default=40)
    p.add_argument('--kitti-frames', type=int, default=30)
    args = p.parse_args(argv)
    setup_logging()

    def run() -> int:
        t0 = time.perf_counter()
        model = pathlib.Path(args.model)
        if not model.is_file():
            raise DemoError(f'model {model} not found (the default model ships in models/)')
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        use_large_image_profile()  # for this process's camera streams and the node's
        rows = []
        with tempfile.TemporaryDirectory(prefix='seg_demo_') as work:
            for stream in find_streams(args.camvid_frames, args.kitti_frames):
                rows.append(run_stream(stream, model, pathlib.Path(args.params), out,
                                       pathlib.Path(work), args.rate))
        # One row per stream (their aspect ratios differ), stacked.
        sheets = [contact_sheet([read_rgb(path) for path in r['pick']], columns=4,
                                tile_width=320,
                                captions=[f"{r['stream']} #{i}" for i in range(len(r['pick']))])
                  for r in rows if r['pick']]
        if sheets:
            width = max(s.shape[1] for s in sheets)
            write_rgb(out / 'contact_sheet.png', np.vstack(
                [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in sheets]))
        text = summary_markdown(rows, model, time.perf_counter() - t0)
        (out / 'summary.md').write_text(text)
        (out / 'summary.json').write_text(json.dumps(rows, indent=2, default=float) + '\n')
        print(text)
        return 0

    return run_cli(PROG, run, (DemoError, BagError, OSError))


if __name__ == '__main__':
    sys.exit(main())
