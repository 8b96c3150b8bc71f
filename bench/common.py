"""Small helpers shared by the benchmarks: timing, machine info, results files, tables.

Timing rule: warm up first (compilation, caches), then take the median of N runs; when
several variants are compared, run them interleaved (A, B, C, A, B, C, ...) so that a
change in machine load affects all of them alike and their ratios stay meaningful.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

from seg_perception.core.formats import DEFAULT_MODEL_NAME

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / 'bench' / 'results'
DEFAULT_MODEL = REPO / 'models' / DEFAULT_MODEL_NAME
SHARED_DATA = pathlib.Path(os.environ.get('SEG_SHARED_DATA', REPO.parent / 'shared' / 'data'))


def resolve_model(arg: str | None, folder: pathlib.Path, spec: Any = None,
                  ) -> tuple[pathlib.Path, str]:
    """The model a bench times: ``--model`` if given, else the shipped default model, else a
    random-weights model of ``spec`` written into ``folder`` (timing does not depend on the
    weights).

    Returns:
        ``(path, note)``; the note says which model it is, for the report.

    Raises:
        FileNotFoundError: ``arg`` names a file that does not exist.
    """
    if arg:
        path = pathlib.Path(arg)
        if not path.is_file():
            raise FileNotFoundError(f'model file {path} not found')
        return path, str(path)
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL, str(DEFAULT_MODEL)
    from seg_perception.model.fcn8s import ModelSpec
    from seg_perception.model.model_file import save_random_model
    spec = spec or ModelSpec()
    path = save_random_model(folder / 'random.segmodel', spec, seed=0,
                             training={'dataset': 'none (random weights, bench)'})
    return path, f'random weights ({spec}; no trained model yet)'


def parse_size(text: str) -> tuple[int, int]:
    """``'375x1242'`` -> ``(375, 1242)`` (height x width), for ``--size`` arguments."""
    h, w = text.lower().split('x')
    return int(h), int(w)


def _stats(times_s: Sequence[float]) -> dict[str, Any]:
    ms = [t * 1e3 for t in times_s]
    return {'median_ms': statistics.median(ms), 'min_ms': min(ms), 'max_ms': max(ms),
            'runs': len(ms), 'all_ms': [round(v, 3) for v in ms]}


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Returns:
        ``{'median_ms', 'min_ms', 'max_ms', 'runs', 'all_ms'}`` (milliseconds, wall clock).
    """
    for _ in range(max(0, warmup)):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _stats(times)


def time_interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int = 5,
                     warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Time several variants side by side, interleaved round by round.

    Returns:
        name -> the :func:`time_call` statistics of that variant, plus ``first_ms`` (the
        first warm-up call, i.e. including compilation) when ``warmup`` > 0.
    """
    first = {}
    for i in range(max(0, warmup)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i == 0:
                first[name] = (time.perf_counter() - t0) * 1e3
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name in fns:
        out[name] = _stats(times[name])
        if name in first:
            out[name]['first_ms'] = round(first[name], 3)
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


MATRIX_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile',
                'amx_bf16', 'amx_int8')


def cpu_flags() -> list[str]:
    """The CPU's vector/matrix flags that decide speed here (from /proc/cpuinfo)."""
    from seg_perception.core import hardware
    have = hardware.cpu_flags()
    return [f for f in MATRIX_FLAGS if f in have]


def machine_info() -> dict[str, Any]:
    """Machine, load and library versions, to store next to every result."""
    info: dict[str, Any] = {
        'date_utc': time.strftime('%Y-%m-%d %H:%M', time.gmtime()),
        'platform': platform.platform(),
        'python': sys.version.split()[0],
        'cpu': _cpu_model(),
        'cpu_count': os.cpu_count(),
        'cpu_flags': ' '.join(cpu_flags()) or 'unknown',
        'keras_backend': os.environ.get('KERAS_BACKEND', 'tensorflow'),
        'versions': {name: _version(dist) for name, dist in (
            ('numpy', 'numpy'), ('tensorflow', 'tensorflow-cpu'), ('keras', 'keras'),
            ('opencv', 'opencv-python-headless'), ('pydensecrf', 'pydensecrf2'),
            ('jax', 'jax'))},
    }
    if info['versions']['tensorflow'] is None:
        info['versions']['tensorflow'] = _version('tensorflow')
    try:
        info['load_average_1_5_15'] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    try:
        from seg_perception.core.hardware import cpu_has_bf16
        info['cpu_bf16'] = cpu_has_bf16()
    except ImportError:
        pass
    return info


def write_results(name: str, results: Mapping[str, Any],
                  path: str | os.PathLike | None = None) -> pathlib.Path:
    """Write ``results`` as JSON to ``path`` (default ``bench/results/<name>.json``)."""
    out = pathlib.Path(path) if path else RESULTS_DIR / f'{name}.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=_json_default) + '\n')
    return out


def _json_default(value: Any) -> Any:
    if hasattr(value, 'tolist'):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    raise TypeError(f'not JSON serialisable: {type(value).__name__}')


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   headers: Sequence[str] | None = None) -> str:
    """A GitHub markdown table of ``rows`` (dicts) with the given columns.

    Floats are shown with 3 significant decimals; missing values as empty cells.
    """
    headers = list(headers or columns)
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col, '')
            cells.append(f'{value:.3f}' if isinstance(value, float) else str(value))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def print_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                headers: Sequence[str] | None = None) -> None:
    """Print a titled markdown table to stdout."""
    print(f'\n### {title}\n')
    print(markdown_table(rows, columns, headers))
    print()
