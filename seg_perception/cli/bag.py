r"""``seg_bag``: road segmentation on rosbag2 recordings, with or without a ROS 2 install.

Subcommands::

    seg_bag make  --images DIR [--labels DIR] --out BAG       image folder -> rosbag2
    seg_bag eval  --bag BAG --out DIR [--write-bag]            offline replay + metrics
    seg_bag live  --bag BAG --out DIR [--namespace NS]         replay into a running node

Examples (CamVid validation frames as a 1 Hz camera stream with ground truth)::

    seg_bag make --images ../shared/data/camvid/val --labels ../shared/data/camvid/valannot \
        --label-format camvid --rate 1 --out bags/camvid_val
    seg_bag eval --bag bags/camvid_val --out eval/camvid_val_bag --write-bag
    seg_bag eval --bag bags/camvid_val --out eval/onnx --backend onnxruntime --model road.onnx
    road_segmentation --ros-args -r __ns:=/camera -p publish_probability:=true &
    seg_bag live --bag bags/camvid_val --out eval/camvid_val_live

Bags are read and written with the pure-Python ``rosbags`` library (rosbag2 folders in
mcap or sqlite3 storage, or a bare .mcap / .db3 file), so neither ``ros2 bag`` nor a
sourced ROS workspace is needed; ``eval`` uses the node's own parameter handling and
``live`` talks DDS, both through rclpy. ``seg_bag SUB --help`` explains each subcommand.

Exit status: 0 done; 1 bad input (one ``seg_bag: error: ...`` line; whatever was processed
before the error is written, marked ``"partial": true``); 130 interrupted (Ctrl-C; partial
results written too).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from seg_perception.bag import make as bag_make
from seg_perception.bag import replay as bag_replay
from seg_perception.bag.bagfile import BagError
from seg_perception.bag.fleet_report import compare_runs
from seg_perception.bag.fleet_run import run_fleet
from seg_perception.bag.make import MakeOptions, make_bag
from seg_perception.bag.replay import EvalOptions, default_params_file, run_eval
from seg_perception.cli.common import check_out_dir, run_cli, setup_logging
from seg_perception.core.choices import (
    BACKEND_CHOICES,
    DEVICES,
    INPUT_MODES,
    OVERLAY_ENCODINGS,
    PRECISIONS,
    PROVIDERS,
    TTA_MODES,
)
from seg_perception.core.formats import UsageError, backend_of_file, check_model_for_backend
from seg_perception.datasets import DatasetError
from seg_perception.evaluation.report import metrics_table
from seg_perception.geometry.kitti_bev import read_kitti_calib
from seg_perception.ros import live_replay
from seg_perception.ros.dds_env import use_large_image_profile
from seg_perception.ros.live_replay import LiveOptions, run_live

PROG = 'seg_bag'


def build_parser() -> argparse.ArgumentParser:
    """``seg_bag`` and its subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=raw)
    p.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = p.add_subparsers(dest='command', metavar='{make,eval,live}', required=True)

    m = sub.add_parser('make', help='build a rosbag2 from an image folder (+ ground truth)',
                       description=bag_make.__doc__, formatter_class=raw)
    m.add_argument('--images', required=True,
                   help='folder of PNG/JPEG frames (KITTI image_2, a CamVid split ...); '
                        'frames are taken in file-name order')
    m.add_argument('--labels', help='ground-truth folder (KITTI gt_image_2, CamVid '
                                    '<split>annot, masks ...); written as mono8 on the '
                                    '--gt-topic')
    m.add_argument('--label-format', choices=bag_make.LABEL_FORMATS,
                   help='ground-truth format (default: kitti when the folder holds '
                        '*_road_*.png files, else camvid): folder = masks mapped by '
                        '--mapping, cityscapes = gtFine labelIds, bdd100k = drivable masks, '
                        'mapillary = Vistas label PNGs (config_<version>.json found two '
                        'folders up)')
    m.add_argument('--mapping', metavar='FILE',
                   help='--label-format folder: classes.yaml mapping mask values to road / '
                        'not_road / ignore (default <labels>/../classes.yaml)')
    m.add_argument('--alternative', choices=['road', 'ignore'], default='road',
                   help='--label-format bdd100k: alternative drivable lanes are road '
                        '(default) or ignored')
    m.add_argument('--out', required=True, help='bag folder to create (must not exist)')
    m.add_argument('--rate', type=float, default=10.0, help='frames per second (default 10)')
    m.add_argument('--topic', default='/camera/image',
                   help='image topic (default /camera/image; with --compressed the data '
                        'goes to <topic>/compressed)')
    m.add_argument('--gt-topic', help='ground-truth topic (default <namespace>/road_gt)')
    m.add_argument('--info-topic', help="camera_info topic (default <namespace>/camera_info; "
                                        "'' = none)")
    m.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap',
                   help='rosbag2 storage (default mcap)')
    m.add_argument('--compressed', nargs='?', const='png', choices=['png', 'jpeg'],
                   help='write sensor_msgs/CompressedImage (png if no format is given)')
    m.add_argument('--encoding', choices=OVERLAY_ENCODINGS, default='rgb8',
                   help='raw image encoding (default rgb8)')
    m.add_argument('--frame-id', default='camera', help='header frame_id (default camera)')
    m.add_argument('--start-time', type=float,
                   help='stamp of the first frame, seconds since the epoch (default now)')
    m.add_argument('--limit', type=int, help='only the first N frames')
    m.add_argument('--calib', metavar='FILE',
                   help="KITTI calibration file: camera_info gets K of its P2 (so the node's "
                        'road/grid can project); default: uncalibrated (K = 0)')

    e = sub.add_parser('eval', help='replay a bag offline through the node pipeline, score it',
                       description=bag_replay.__doc__, formatter_class=raw)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument('--bag', help='rosbag2 folder, .mcap or .db3 file')
    which.add_argument('--bags', nargs='+', metavar='PATH',
                       help='a fleet: bags, folders holding bags (searched recursively) or '
                            'text files listing bags; each into OUT/bags/<name>/, the fleet '
                            'report (metrics.json, bags.csv, fleet.md) into OUT')
    e.add_argument('--out', required=True,
                   help='output folder: metrics.json, frames.csv, report.md, pr_curve.png, '
                        'overlays/ (and bag/ with --write-bag)')
    f = e.add_argument_group('fleet (--bags)')
    f.add_argument('--workers', type=int, default=1,
                   help='1 (default): in this process, without Ray; N > 1: a local Ray '
                        'instance with N workers')
    f.add_argument('--ray-address', metavar='ADDR',
                   help="an existing Ray cluster ('auto' or ray://host:port); bag paths, the "
                        'model and the params file must be readable on every node')
    f.add_argument('--resume', action='store_true',
                   help='skip bags whose folder under OUT/bags holds a complete result, and '
                        'write the fleet report again')
    f.add_argument('--compare', metavar='OTHER_OUT',
                   help='put this fleet run and the one in OTHER_OUT side by side per bag '
                        '(OUT/compare.md, compare.csv)')
    e.add_argument('--topics', nargs='+', metavar='TOPIC',
                   help='image topics (default: every Image/CompressedImage topic)')
    e.add_argument('--gt-topic', nargs='+', metavar='TOPIC',
                   help='ground-truth topic(s): one for all image topics or one per --topics '
                        'entry (default: <namespace>/road_gt when present)')
    e.add_argument('--params', help='node parameters YAML (default config/road.yaml here, '
                                    'else the installed one, else node defaults)')
    e.add_argument('--model', help='model file (overrides the params file model_path): '
                                   '.segmodel, or .onnx with --backend onnxruntime')
    e.add_argument('--backend', choices=BACKEND_CHOICES,
                   help='overrides backend (default: the params file, else auto; an .onnx '
                        '--model implies onnxruntime)')
    e.add_argument('--providers', nargs='+', choices=PROVIDERS, metavar='EP',
                   help='overrides providers: onnxruntime execution providers in order of '
                        'preference (tensorrt cuda cpu)')
    e.add_argument('--crf', action=argparse.BooleanOptionalAction, default=None,
                   help='dense CRF on/off (overrides crf.enabled)')
    e.add_argument('--crf-scale', type=float, metavar='S',
                   help='CRF resolution factor (overrides crf.scale; implies --crf)')
    e.add_argument('--input-mode', choices=INPUT_MODES, help='overrides input_mode')
    e.add_argument('--threshold', type=float, help='overrides threshold')
    e.add_argument('--tta', choices=TTA_MODES, help='overrides tta (flip: frame and mirror '
                                                    'averaged)')
    e.add_argument('--device', choices=DEVICES, help='overrides device')
    e.add_argument('--precision', choices=PRECISIONS,
                   help='overrides precision')
    e.add_argument('--write-bag', action='store_true',
                   help='also write <out>/bag: the inputs plus <ns>/road/label (mono8) and '
                        '<ns>/road/overlay (rgb8) with the original stamps')
    e.add_argument('--limit', type=int, help='process only the first N image messages')
    e.add_argument('--batch-size', type=int, default=4, help='frames per forward pass')
    e.add_argument('--overlays', type=int, default=4, metavar='N',
                   help='overlay PNGs to write (default 4)')
    e.add_argument('--save-probabilities', action='store_true',
                   help='write prob/<topic>_<stamp>.png (uint8 road probability)')

    lv = sub.add_parser('live', help='play a bag into a running node, record and score it',
                        description=live_replay.__doc__, formatter_class=raw)
    lv.add_argument('--bag', required=True, help='rosbag2 folder, .mcap or .db3 file')
    lv.add_argument('--out', required=True,
                    help='output folder: metrics.json, frames.csv, report.md, recorded/')
    lv.add_argument('--rate', type=float, default=1.0, metavar='FACTOR',
                    help='playback speed relative to the recording (default 1.0)')
    lv.add_argument('--namespace', metavar='NS',
                    help="the node's namespace (default: each image topic's own namespace)")
    lv.add_argument('--timeout', type=float, default=30.0, metavar='S',
                    help='seconds to wait for the node to appear and for the last outputs '
                         '(default 30)')
    lv.add_argument('--topics', nargs='+', metavar='TOPIC', help='image topics (default all)')
    lv.add_argument('--gt-topic', nargs='+', metavar='TOPIC',
                    help='ground-truth topic(s) (default <namespace>/road_gt when present)')
    lv.add_argument('--limit', type=int, help='publish only the first N image messages')
    lv.add_argument('--record-overlay', action='store_true',
                    help='also record road/overlay (makes the node render overlays)')
    return p


def _label_format(labels: str) -> str:
    folder = pathlib.Path(labels)
    if folder.is_dir() and any(folder.glob('*_road_*.png')):
        return 'kitti'
    return 'camvid'


def cmd_make(args: argparse.Namespace) -> int:
    """``seg_bag make``."""
    fmt = args.label_format or (_label_format(args.labels) if args.labels else None)
    if args.mapping and fmt != 'folder':
        raise UsageError('--mapping goes with --labels and --label-format folder')
    k = None
    if args.calib:
        try:
            k = read_kitti_calib(args.calib).p2[:, :3]
        except (OSError, ValueError) as exc:
            raise UsageError(f'--calib {args.calib}: {" ".join(str(exc).split())}') from None
    opt = MakeOptions(rate=args.rate, topic=args.topic, gt_topic=args.gt_topic,
                      info_topic=args.info_topic, storage=args.storage,
                      compressed=args.compressed, encoding=args.encoding,
                      frame_id=args.frame_id, limit=args.limit,
                      start_ns=None if args.start_time is None else int(args.start_time * 1e9),
                      camera_matrix=k, mapping=args.mapping, alternative=args.alternative)
    info = make_bag(args.images, args.out, args.labels, fmt, opt)
    print(f'wrote {info["path"]}: {info["frames"]} frame(s) at {args.rate:g} Hz')
    for topic, n in info['topics'].items():
        print(f'  {topic}: {n}')
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``seg_bag eval``."""
    if args.limit is not None and args.limit < 1:
        raise UsageError(f'--limit must be >= 1, got {args.limit}')
    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.providers and len(set(args.providers)) != len(args.providers):
        raise UsageError(f'--providers has duplicates: {args.providers}')
    if args.bag and (args.workers != 1 or args.ray_address or args.resume or args.compare):
        raise UsageError('--workers, --ray-address, --resume and --compare go with --bags')
    if args.workers < 1:
        raise UsageError(f'--workers must be >= 1, got {args.workers}')
    if args.compare and not (pathlib.Path(args.compare) / 'metrics.json').is_file():
        raise UsageError(f'--compare {args.compare}: no fleet report there (metrics.json)')
    backend = args.backend
    if backend is None and args.model and backend_of_file(args.model) == 'onnxruntime':
        backend = 'onnxruntime'
    if args.model:  # before run_eval imports TensorFlow
        check_model_for_backend(args.model, backend_of_file(args.model)
                                if backend in (None, 'auto') else backend)
    check_out_dir(args.out)
    params = args.params or default_params_file()
    opt = EvalOptions(topics=args.topics, gt_topics=args.gt_topic,
                      params_file=str(params) if params else None, model=args.model,
                      crf=args.crf, crf_scale=args.crf_scale, input_mode=args.input_mode,
                      threshold=args.threshold, device=args.device, precision=args.precision,
                      tta=args.tta,
                      backend=backend, providers=args.providers,
                      write_bag=args.write_bag, limit=args.limit, batch_size=args.batch_size,
                      overlays=args.overlays, save_probabilities=args.save_probabilities)
    if args.bags:
        return _fleet(args, opt)
    doc = run_eval(args.bag, args.out, opt)
    _print_eval(doc, metrics_table)
    print(f'results written to {args.out}/ (metrics.json, frames.csv, report.md)')
    return 0


def _fleet(args: argparse.Namespace, opt: EvalOptions) -> int:
    """``seg_bag eval --bags``: exit 1 with one line when a bag failed."""
    doc = run_fleet(args.bags, args.out, opt, args.workers, args.ray_address, args.resume)
    if doc['ground_truth']:
        print(metrics_table(doc))
    print(f'{doc["bags_ok"]} of {doc["bags_total"]} bag(s), {doc["frames"]} frame(s); '
          f'fleet report in {args.out}/ (metrics.json, bags.csv, fleet.md)')
    if args.compare:
        result = compare_runs(pathlib.Path(args.out), pathlib.Path(args.compare))
        d = result['overall']['MaxF']
        print(f'vs {args.compare}: MaxF {"-" if d is None else f"{d:+.4f}"}; '
              f'{len(result["worse"])} bag(s) worse: {", ".join(result["worse"][:10])} '
              f'({args.out}/compare.md)')
    if doc['bags_failed']:
        bad = [b for b in doc['bags'] if b['status'] != 'ok']
        raise UsageError(f'{len(bad)} of {doc["bags_total"]} bag(s) failed (first: '
                         f'{bad[0]["name"]}: {bad[0]["reason"]}); see {args.out}/fleet.md')
    return 0


def _print_eval(doc: dict[str, Any], table: Any) -> None:
    print(f'{doc["frames"]} frame(s) processed')
    if doc.get('ground_truth'):
        print(table(doc))
    else:
        print(f'no metrics: {doc.get("metrics_error", "no ground truth")}')
    for topic, m in doc.get('topics', {}).items():
        score = f'MaxF {m["MaxF"]:.4f} IoU {m["IoU"]:.4f}' if 'MaxF' in m else m.get('error')
        print(f'  {topic}: {m["frames"]} frame(s), {score}')


def cmd_live(args: argparse.Namespace) -> int:
    """``seg_bag live``."""
    if args.rate <= 0:
        raise UsageError(f'--rate must be > 0, got {args.rate}')
    if args.timeout <= 0:
        raise UsageError(f'--timeout must be > 0, got {args.timeout}')
    check_out_dir(args.out)
    opt = LiveOptions(rate=args.rate, namespace=args.namespace, timeout=args.timeout,
                      topics=args.topics, gt_topics=args.gt_topic, limit=args.limit,
                      record_overlay=args.record_overlay)
    use_large_image_profile()  # large best-effort frames over shared memory (before rclpy)
    doc = run_live(args.bag, args.out, opt)
    lat = doc['latency_ms']['header_to_receive']
    print(f'{doc["frames_published"]} frame(s) published, {doc["outputs_received"]} '
          f'segmented, {doc["dropped_frames"]} dropped')
    if lat:
        print(f'latency (receive - header stamp) ms: p50 {lat["p50"]:.1f} p95 {lat["p95"]:.1f} '
              f'max {lat["max"]:.1f}')
    acc = doc.get('accuracy')
    if acc and 'IoU' in acc:
        print(f'accuracy ({doc["accuracy_source"]}): F {acc["F_at_threshold"]:.4f} '
              f'IoU {acc["IoU_at_threshold"]:.4f}')
    print(f'results written to {args.out}/ (metrics.json, frames.csv, report.md)')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_bag``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    commands = {'make': cmd_make, 'eval': cmd_eval, 'live': cmd_live}

    def run() -> int:
        try:
            return commands[args.command](args)
        except Exception as exc:
            if not isinstance(exc, _expected()):
                raise
            raise UsageError(' '.join(str(exc).split())) from None
    return run_cli(PROG, run, ())


def _expected() -> tuple[type[BaseException], ...]:
    """Errors of bad input (one-line messages), as opposed to bugs. Found lazily: make and
    live never import the model code (and so TensorFlow).
    """
    errors: list[type[BaseException]] = [BagError, DatasetError, ValueError, OSError,
                                         RuntimeError]
    model_io = sys.modules.get('seg_perception.model.model_file')
    if model_io is not None:
        errors.append(model_io.ModelFileError)
    return tuple(errors)


if __name__ == '__main__':
    sys.exit(main())
