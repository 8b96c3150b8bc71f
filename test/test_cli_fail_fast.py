"""The command-line tools fail fast on bad input: one ``<prog>: error: ...`` line, exit 1,
TensorFlow never imported, nothing created.

Each case runs the tool's ``main`` in a subprocess that reports afterwards whether
TensorFlow/Keras got imported (importing them is what made failures take 4-8 s).
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest

from seg_perception.cli import common as cli_common
from seg_perception.core import formats

RUN = '''
import sys
from {module} import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
imported = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)
sys.stderr.write('IMPORTED=' + ','.join(imported) + '\\n')
sys.exit(rc)
'''
MODULES = {'seg_evaluate': 'seg_perception.cli.evaluate', 'seg_train': 'seg_perception.cli.train',
           'seg_bag': 'seg_perception.cli.bag'}


def run_cli(prog: str, args: list[str], cwd: pathlib.Path) -> tuple[int, list[str], str, float]:
    """(exit code, stderr lines without the import report, imported modules, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', RUN.format(module=MODULES[prog]), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    seconds = time.perf_counter() - t0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    report = [line for line in lines if line.startswith('IMPORTED=')]
    assert report, proc.stderr
    return (proc.returncode, [line for line in lines if not line.startswith('IMPORTED=')],
            report[-1].split('=', 1)[1], seconds)


@pytest.fixture(scope='module')
def corrupt_model(small_model_path: pathlib.Path,
                  tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp('corrupt') / 'corrupt.segmodel'
    path.write_bytes(small_model_path.read_bytes()[:50_000])  # truncated zip
    return path


CASES = [
    ('seg_evaluate', ['--model', '{missing}', '--dataset', 'kitti', '--data-dir', '{tmp}',
                      '--out', '{out}'], '--model {missing}: model file not found'),
    ('seg_evaluate', ['--model', '{corrupt}', '--dataset', 'kitti', '--data-dir', '{tmp}',
                      '--out', '{out}'], 'not a seg_perception model file'),
    ('seg_evaluate', ['--model', '{model}', '--dataset', 'kitti', '--data-dir', '{tmp}',
                      '--out', '{file}'], '--out {file} exists and is not a folder'),
    ('seg_evaluate', ['--model', '{model}', '--dataset', 'kitti', '--data-dir', '{missing}',
                      '--out', '{out}'], '{missing}'),
    ('seg_evaluate', ['--model', '{model}', '--dataset', 'kitti', '--data-dir', '{tmp}',
                      '--out', '{out}', '--threshold', '2'], '--threshold must be in [0, 1]'),
    ('seg_train', ['--dataset', 'kitti', '--data-dir', '{missing}', '--out', '{out}'],
     '{missing}'),
    ('seg_train', ['--dataset', 'kitti', '--data-dir', '{tmp}', '--out', '{file}'],
     '--out {file} exists and is not a folder'),
    ('seg_train', ['--dataset', 'kitti', '--data-dir', '{tmp}', '--out', '{out}', '--resume'],
     'nothing to resume'),
    ('seg_bag', ['eval', '--bag', '{missing}', '--model', '{corrupt}', '--out', '{out}'],
     'not a seg_perception model file'),
    ('seg_bag', ['eval', '--bag', '{missing}', '--out', '{file}'],
     '--out {file} exists and is not a folder'),
    ('seg_bag', ['live', '--bag', '{missing}', '--out', '{file}'],
     '--out {file} exists and is not a folder'),
]


@pytest.mark.parametrize('prog, args, message', CASES,
                         ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)])
def test_bad_input_fails_fast_with_one_line(prog: str, args: list[str], message: str,
                                            tmp_path: pathlib.Path, small_model_path: Any,
                                            corrupt_model: pathlib.Path) -> None:
    (tmp_path / 'a_file').write_text('not a folder')
    names = {'missing': str(tmp_path / 'missing' / 'x.segmodel'), 'tmp': str(tmp_path),
             'out': str(tmp_path / 'out' / 'run'), 'file': str(tmp_path / 'a_file'),
             'model': str(small_model_path), 'corrupt': str(corrupt_model)}
    before = sorted(tmp_path.rglob('*'))
    rc, lines, imported, seconds = run_cli(prog, [a.format(**names) for a in args], tmp_path)
    print(f'{prog} {" ".join(args)}: exit {rc} in {seconds:.2f} s: {lines}')
    assert rc == 1, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f'{prog}: error: '), lines
    assert message.format(**names) in lines[0], lines
    assert 'Errno' not in lines[0] and 'Traceback' not in lines[0], lines
    assert imported == '', f'{imported} imported before failing'
    assert sorted(tmp_path.rglob('*')) == before  # nothing created


def test_cheap_model_check_reads_what_the_model_writer_writes(small_model_path) -> None:
    # one CARD_NAME (core.formats) serves the writer and the check
    assert formats.check_model_file(small_model_path) == small_model_path


def test_out_check_creates_nothing(tmp_path: pathlib.Path) -> None:
    target = tmp_path / 'a' / 'b'
    assert cli_common.check_out_dir(target) == target
    assert not (tmp_path / 'a').exists()
    (tmp_path / 'f').write_text('x')
    with pytest.raises(formats.UsageError, match='is not a folder'):
        cli_common.check_out_dir(tmp_path / 'f' / 'sub')
