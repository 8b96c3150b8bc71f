"""Run every benchmark once, one after another, and write docs/PERFORMANCE.md from the runs.

Each bench runs in its own process (clean memory, no shared compilation caches) and prints
markdown tables; those tables (kept as bench/results/<bench>.section.md, with the date and
command of their run), the machine and the library versions go into the report, so every
number in it comes from a measured run. ``--only`` re-runs some benches and keeps the
stored sections of the others. A GPU section is included
from ``bench/results/backend_jax_gpu.json`` when a GPU run (``bench.bench_backend`` with
``KERAS_BACKEND=jax`` on a GPU machine) has produced one.

    python -m bench.run_all --out docs/PERFORMANCE.md            # everything (~15 min)
    python -m bench.run_all --only segmenter crf --out /tmp/p.md
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from bench.common import REPO, RESULTS_DIR, machine_info

# name -> (title, module and arguments[, environment of the run])
BENCHES: dict[str, tuple] = {
    'segmenter': ('Segmenter (TensorFlow float32 / auto precision, ONNX Runtime CPU float32 '
                  '/ int8) vs a per-frame predict loop, and its overhead over the bare '
                  'compiled forward pass', ['bench.bench_segmenter']),
    'segmenter_avx2': ('The same on an AVX2-only CPU, emulated: oneDNN capped at AVX2 '
                       '(ONEDNN_MAX_CPU_ISA=AVX2; ONNX Runtime left out, the cap does not '
                       'reach it)',
                       ['bench.bench_segmenter', '--no-onnx', '--sizes', '375x1242', '--json',
                        'bench/results/segmenter_avx2.json'], {'ONEDNN_MAX_CPU_ISA': 'AVX2'}),
    'frame_path': ('Per-frame path outside the model, stage by stage over real DDS (decode, '
                   'preprocess, host<->device, post, overlay, messages, publish)',
                   ['bench.bench_frame_path']),
    'crf': ('Dense CRF options vs full-resolution pydensecrf (5 iterations) on CamVid val',
            ['bench.bench_crf']),
    'node': ('Node overhead over the bare Segmenter; three cameras in one node vs three '
             'nodes (default model, resize to 192x256; cameras saturated at 30 Hz each)',
             ['bench.bench_node', '--rate', '30']),
    'node_vs_base': ('Node round trip of this checkout vs the --base commit (make bench '
                     'BASE=<rev>), both nodes running, frames alternating',
                     ['bench.bench_node', '--skip-cameras', '--frames', '40', '--json',
                      'bench/results/node_vs_base.json', '--compare-source', '{base}']),
    'node_full_resolution': ('Node overhead with full-resolution inference (pad mode)',
                             ['bench.bench_node', '--input-mode', 'pad', '--skip-cameras',
                              '--json', 'bench/results/node_pad.json']),
    'geometry': ('Default-model latency: previous default geometry (VGG16-BN, resize 256x192) '
                 'vs the new default (fit, height 192) and full resolution (pad)',
                 ['bench.bench_geometry']),
    'training': ('Training throughput at the default resolution; input pipeline vs cached '
                 'batch', ['bench.bench_training']),
    'backend': ('FCN-8s forward on this CPU: TensorFlow vs JAX backend, fp32 vs bf16, '
                'batch 1 and 4 at 1242x375', ['bench.bench_backend', '--repeats', '3',
                                               '--batches', '1', '4']),
}


def _run(module_args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-m', *module_args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + (proc.stderr[-2000:] if proc.returncode else ''), \
        time.perf_counter() - t0


def _worktree(rev: str) -> pathlib.Path:
    """A temporary detached git worktree of ``rev`` (removed after its bench)."""
    import tempfile
    path = pathlib.Path(tempfile.mkdtemp(prefix='bench_base_')) / 'tree'
    subprocess.run(['git', 'worktree', 'add', '--detach', str(path), rev], cwd=REPO,
                   check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(REPO / 'docs' / 'PERFORMANCE.md'))
    p.add_argument('--only', nargs='+', choices=sorted(BENCHES), help='run only these')
    p.add_argument('--base', default=os.environ.get('BASE') or None, metavar='REV',
                   help='git revision for node_vs_base (a temporary worktree); default $BASE, '
                        'unset = that bench is skipped')
    args = p.parse_args(argv)

    info = machine_info()
    failed = []
    for name, (title, module_args, *bench_env) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        if '{base}' in module_args and not args.base:
            print(f'[run_all] {name}: skipped (no --base / BASE)', file=sys.stderr)
            continue
        print(f'[run_all] {name} ...', file=sys.stderr, flush=True)
        worktree = _worktree(args.base) if '{base}' in module_args else None
        if worktree:
            module_args = [a.replace('{base}', str(worktree)) for a in module_args]
        runs = [('', module_args, bench_env[0] if bench_env else None)]
        if name == 'backend':
            runs.append((' (JAX backend)', module_args, {'KERAS_BACKEND': 'jax'}))
        for i, (suffix, margs, env) in enumerate(runs):
            rc, out, secs = _run(margs, env)
            status = '' if rc == 0 else f'\n\n**This bench failed (exit {rc}).**\n'
            if rc:
                failed.append(name + suffix)
            env_text = ''.join(f'{k}={v} ' for k, v in (env or {}).items())
            section = (f'## {title}{suffix}\n\n`{env_text}python -m {" ".join(margs)}` '
                       f'({secs:.0f} s, {time.strftime("%Y-%m-%d %H:%M", time.gmtime())} UTC)'
                       f'{status}\n\n{out.strip()}\n')
            # Kept per bench, so a partial re-run (--only) still writes the whole report.
            (RESULTS_DIR / f'{name}{"_" + str(i) if i else ""}.section.md').write_text(section)
        if worktree:
            subprocess.run(['git', 'worktree', 'remove', '--force', str(worktree)], cwd=REPO,
                           capture_output=True)
    sections = []
    for name in BENCHES:
        for part in sorted(RESULTS_DIR.glob(f'{name}.section.md')) + sorted(
                RESULTS_DIR.glob(f'{name}_[0-9].section.md')):
            sections.append(part.read_text())
    gpu = RESULTS_DIR / 'backend_jax_gpu.json'
    if gpu.is_file():
        doc = json.loads(gpu.read_text())
        rows = doc['rows']
        table = ['| precision | batch | size | ms/batch | frames/s |', '|---|---|---|---|---|']
        table += [f"| {r['precision']} | {r['batch']} | {r['size']} | "
                  f"{r['ms_per_batch']:.2f} | {r['frames_per_s']:.1f} |" for r in rows]
        gpu_text = (f"Measured on {doc['machine'].get('cpu', '?')} host with a GPU, "
                    f"{doc['machine']['date_utc']} UTC, Keras on JAX.\n\n" + '\n'.join(table))
    else:
        gpu_text = ('Not measured yet: no GPU machine was available to the session that '
                    'generated this report. On a GPU machine with JAX run\n\n'
                    '    KERAS_BACKEND=jax python -m bench.bench_backend --device gpu\n\n'
                    'which writes bench/results/backend_jax_gpu.json; `make bench` then '
                    'includes it here.')
    versions = ', '.join(f'{k} {v}' for k, v in info['versions'].items() if v)
    header = (
        '# Performance\n\n'
        'Generated by `make bench` (`python -m bench.run_all`); every number below comes '
        'from the measured run named under its heading. Ratios compare variants measured '
        'side by side in the same run (interleaved where the bench says so).\n\n'
        f"- machine: {info['cpu']}, {info['cpu_count']} cores, {info['platform']}; "
        f"bf16 matrix units: {info.get('cpu_bf16')}\n"
        f"- report written: {info['date_utc']} UTC; load average then: "
        f"{info.get('load_average_1_5_15')}\n"
        f"- versions: Python {info['python']}, {versions}\n")
    text = header + '\n' + '\n'.join(sections) + '\n## GPU (FCN-8s at 1242x375, batch 1 and ' \
        '8, fp32 and mixed precision, Keras on JAX)\n\n' + gpu_text + '\n'
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f'[run_all] wrote {out}' + (f'; failed: {", ".join(failed)}' if failed else ''),
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
