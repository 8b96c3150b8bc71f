"""Fleet replay throughput: ``seg_bag eval --bags`` with ``--workers 1`` (in-process) and
``--workers 2`` (local Ray) side by side on the same bags, and Ray's start-up cost.

Bags: 10 of CamVid val (10 frames each, in sequence order) and 2 of KITTI Road training
frames (10 each), made with ``seg_bag make`` into a temporary folder; the shipped model and
``config/road.yaml``. Reported per engine: wall time of the whole command (model loading
included), frames per second over the whole run, and the per-bag frames per second
(median). Ray start-up: ``ray.init`` of a local instance, and the first actor ready with a
built pipeline.

    python -m bench.bench_fleet [--bags-camvid 10 --bags-kitti 2 --frames 10] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import REPO, SHARED_DATA, machine_info, print_table, write_results

MODEL = REPO / 'models' / 'road_fcn8s_vgg16.segmodel'
PARAMS = REPO / 'config' / 'road.yaml'


def seg_bag(*args: object) -> None:
    """Run ``seg_bag`` (this checkout) and fail loudly."""
    cmd = [sys.executable, '-c', 'import sys; from seg_perception.cli.bag import main; '
           'sys.exit(main())', *map(str, args)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(f'seg_bag {args[:1]} failed:\n{out.stderr[-2000:]}')


def make_bags(root: pathlib.Path, camvid: int, kitti: int, frames: int) -> list[pathlib.Path]:
    """``camvid`` + ``kitti`` bags of ``frames`` real frames each, with ground truth."""
    bags = []
    cam = sorted((SHARED_DATA / 'camvid' / 'val').glob('*.png'))
    kit = sorted((SHARED_DATA / 'kitti_road' / 'training' / 'image_2').glob('*'))
    for kind, files, n in (('camvid', cam, camvid), ('kitti', kit, kitti)):
        for i in range(n):
            src = root / 'src' / f'{kind}{i}'
            (src / 'img').mkdir(parents=True)
            (src / 'gt').mkdir()
            for p in files[i * frames:(i + 1) * frames]:
                shutil.copy(p, src / 'img')
                if kind == 'camvid':
                    shutil.copy(SHARED_DATA / 'camvid' / 'valannot' / p.name, src / 'gt')
                else:
                    cat, num = p.stem.split('_')
                    shutil.copy(p.parent.parent / 'gt_image_2' / f'{cat}_road_{num}.png',
                                src / 'gt')
            bag = root / 'bags' / f'{kind}{i:02d}'
            bag.parent.mkdir(parents=True, exist_ok=True)
            seg_bag('make', '--images', src / 'img', '--labels', src / 'gt', '--label-format',
                    kind if kind == 'kitti' else 'camvid', '--out', bag, '--rate', 10)
            bags.append(bag)
    return bags


def fleet(bags_dir: pathlib.Path, out: pathlib.Path, workers: int) -> dict[str, object]:
    """One ``seg_bag eval --bags`` run; its wall time and throughput."""
    t0 = time.perf_counter()
    seg_bag('eval', '--bags', bags_dir, '--out', out, '--model', MODEL, '--params', PARAMS,
            '--workers', workers)
    wall = time.perf_counter() - t0
    doc = json.loads((out / 'metrics.json').read_text())
    per_bag = [b['fps'] for b in doc['bags'] if b['status'] == 'ok' and b.get('fps')]
    return {'workers': workers, 'wall_s': wall, 'frames': doc['frames'],
            'fps_overall': doc['frames'] / wall, 'fps_per_bag_median': statistics.median(per_bag),
            'MaxF': doc.get('MaxF'), 'bags_ok': doc['bags_ok']}


def ray_startup() -> dict[str, float]:
    """Seconds for ``ray.init`` (local, 2 CPUs) and for the first actor with a pipeline."""
    code = (
        'import time, json\n'
        't0 = time.perf_counter()\n'
        'import ray\n'
        'ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)\n'
        't1 = time.perf_counter()\n'
        'from seg_perception.bag.fleet_ray import _Evaluator\n'
        'from seg_perception.bag.replay import EvalOptions\n'
        f'opt = EvalOptions(params_file={str(PARAMS)!r}, model={str(MODEL)!r})\n'
        'actor = ray.remote(num_cpus=1)(_Evaluator).remote(opt, None)\n'
        'ray.get(actor.__ray_ready__.remote())\n'
        't2 = time.perf_counter()\n'
        'ray.shutdown()\n'
        'print(json.dumps({"ray_init_s": t1 - t0, "first_actor_ready_s": t2 - t1}))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bags-camvid', type=int, default=10)
    p.add_argument('--bags-kitti', type=int, default=2)
    p.add_argument('--frames', type=int, default=10, help='frames per bag')
    p.add_argument('--keep', help='keep the bags and the fleet reports in this folder')
    p.add_argument('--json', default=None, help='default bench/results/fleet.json')
    args = p.parse_args(argv)

    root = pathlib.Path(args.keep or tempfile.mkdtemp(prefix='bench_fleet_'))
    try:
        bags = make_bags(root, args.bags_camvid, args.bags_kitti, args.frames)
        runs = [fleet(root / 'bags', root / f'out_w{w}', w) for w in (1, 2)]
        startup = ray_startup()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    info = machine_info()
    print(f'{len(bags)} bags, {runs[0]["frames"]} frames; {info["cpu"]}, '
          f'{info["cpu_count"]} CPUs ({info["cpu_flags"]}), load '
          f'{info.get("load_average_1_5_15")}; shipped model, config/road.yaml')
    print_table('seg_bag eval --bags: --workers 1 (in-process) vs --workers 2 (local Ray)',
                [{**r, 'ratio': runs[0]['wall_s'] / r['wall_s']} for r in runs],
                ['workers', 'wall_s', 'frames', 'fps_overall', 'fps_per_bag_median', 'ratio',
                 'MaxF'],
                ['workers', 'wall time (s)', 'frames', 'frames/s overall',
                 'frames/s per bag (median)', 'speed-up vs 1', 'fleet MaxF'])
    print(f'\nRay start-up: ray.init {startup["ray_init_s"]:.2f} s, first actor with its '
          f'pipeline ready {startup["first_actor_ready_s"]:.2f} s later')
    out = write_results('fleet', {'machine': info, 'runs': runs, 'ray_startup': startup,
                                  'bags': len(bags)}, args.json)
    print(f'\nresults: {out}')
    os.environ.get('')  # no-op: keeps the environment untouched
    return 0


if __name__ == '__main__':
    sys.exit(main())
