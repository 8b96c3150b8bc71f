"""``seg_bag eval --bags`` on real data: several small bags from CamVid val and KITTI frames,
a cut-off bag and a missing path, in this process and on a local Ray instance."""
from __future__ import annotations

import contextlib
import io
import json
import pathlib
import shutil

import psutil
import pytest
from conftest import KITTI_SUBSET_NAMES

from seg_perception.bag import fleet
from seg_perception.bag.fleet_report import compare_runs
from seg_perception.bag.fleet_run import FleetProgress, run_fleet
from seg_perception.bag.replay import EvalOptions
from seg_perception.cli import bag as cli
from seg_perception.cli import evaluate as evaluate_cli

pytestmark = pytest.mark.timeout(600)
PARAMS = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'road.yaml'
RUN_KEYS = ('name', 'status', 'frames', 'MaxF', 'IoU', 'reason')  # not time, fps, pid


def run(args: list) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main([str(a) for a in args])
    return rc, out.getvalue()


@pytest.fixture(scope='module')
def fleet_dir(camvid_dir: pathlib.Path, kitti_dir: pathlib.Path,
              tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """bags/cam0..2 (2 CamVid val frames each), bags/kitti/um (one KITTI frame, nested),
    bags/cut (a copy of cam2 cut off mid-write), camvid_union/ (the 6 CamVid frames in the
    CamVid layout) and list.txt (cam0 and a missing bag)."""
    root = tmp_path_factory.mktemp('fleet')
    frames = sorted((camvid_dir / 'val').glob('*.png'))[:6]
    union = root / 'camvid_union'
    (root / 'bags' / 'kitti').mkdir(parents=True)
    for sub in ('val', 'valannot'):
        (union / sub).mkdir(parents=True)
    for i in range(3):
        src = root / f'src{i}'
        (src / 'img').mkdir(parents=True)
        (src / 'ann').mkdir()
        for p in frames[2 * i:2 * i + 2]:
            for a, b in ((camvid_dir / 'val' / p.name, src / 'img'),
                         (camvid_dir / 'valannot' / p.name, src / 'ann'),
                         (camvid_dir / 'val' / p.name, union / 'val'),
                         (camvid_dir / 'valannot' / p.name, union / 'valannot')):
                shutil.copy(a, b)
        assert run(['make', '--images', src / 'img', '--labels', src / 'ann', '--label-format',
                    'camvid', '--out', root / 'bags' / f'cam{i}'])[0] == 0
    ksrc = root / 'ksrc'
    ksrc.mkdir()
    name = KITTI_SUBSET_NAMES[0]
    shutil.copy(next((kitti_dir / 'training' / 'image_2').glob(f'{name}.*')), ksrc)
    labels = root / 'klabels'
    labels.mkdir()
    category, number = name.split('_')
    shutil.copy(kitti_dir / 'training' / 'gt_image_2' / f'{category}_road_{number}.png', labels)
    assert run(['make', '--images', ksrc, '--labels', labels, '--label-format', 'kitti',
                '--out', root / 'bags' / 'kitti' / 'um'])[0] == 0
    shutil.copytree(root / 'bags' / 'cam2', root / 'bags' / 'cut')
    mcap = next((root / 'bags' / 'cut').glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.6)])
    (root / 'list.txt').write_text('bags/cam0\nbags/nope\n')
    return root


def eval_args(root: pathlib.Path, out: pathlib.Path, model: pathlib.Path, *extra: object,
              ) -> list:
    return ['eval', '--bags', root / 'bags', root / 'list.txt', '--out', out, '--model', model,
            '--params', PARAMS, *extra]


@pytest.fixture(scope='module')
def runs(fleet_dir: pathlib.Path, small_model_path: pathlib.Path,
         tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[int, dict]]:
    """The whole fleet with --workers 1 (in-process) and --workers 2 (Ray)."""
    out = {}
    for workers in (1, 2):
        folder = tmp_path_factory.mktemp(f'w{workers}')
        rc, _ = run(eval_args(fleet_dir, folder, small_model_path, '--workers', workers))
        out[workers] = (rc, json.loads((folder / 'metrics.json').read_text()), folder)
    return out


def test_bags_are_found_in_folders_and_lists(fleet_dir: pathlib.Path) -> None:
    found = fleet.find_bags([fleet_dir / 'bags', fleet_dir / 'list.txt'])
    names = [p.relative_to(fleet_dir).as_posix() if p else g for g, p in found]
    assert names == ['bags/cam0', 'bags/cam1', 'bags/cam2', 'bags/cut', 'bags/kitti/um',
                     'bags/cam0', str(fleet_dir / 'bags' / 'nope')]
    jobs = fleet.plan_jobs(found, fleet_dir / 'out', EvalOptions())
    assert [j.name for j in jobs] == ['cam0', 'cam1', 'cam2', 'cut', 'um', 'cam0_2', 'nope']
    assert [j.frames for j in jobs[:5] if j.name != "cut"] == [2, 2, 2, 1]  # not road_gt


def test_faulty_bags_get_a_row_and_exit_1_while_the_others_finish(runs: dict) -> None:
    rc, doc, folder = runs[1]
    assert rc == 1
    rows = {b['name']: b for b in doc['bags']}
    assert rows['nope']['status'] == 'missing' and 'no such bag' in rows['nope']['reason']
    assert rows['cut']['status'] == 'failed' and 'bags/cut' in rows['cut']['reason']
    assert [b['name'] for b in doc['bags'][:2]] == ['cut', 'nope']   # failures first
    ok = [b for b in doc['bags'] if b['status'] == 'ok']
    assert len(ok) == 5 and doc['frames'] == 9 and doc['bags_failed'] == 2
    maxf = [b['MaxF'] for b in ok]
    assert maxf == sorted(maxf)                                       # worst first
    for name in ('cam0', 'cam1', 'cam2', 'um', 'cam0_2'):
        assert (folder / 'bags' / name / 'metrics.json').is_file()
        assert (folder / 'bags' / name / 'fleet.json').is_file()
    for f in ('bags.csv', 'fleet.md', 'pr_curve.png', 'maxf_hist.png'):
        assert (folder / f).is_file(), f
    assert 'cut' in (folder / 'bags.csv').read_text().splitlines()[1]


def test_one_worker_and_two_workers_give_identical_reports(runs: dict) -> None:
    (rc1, doc1, _), (rc2, doc2, _) = runs[1], runs[2]
    assert rc1 == rc2 == 1
    assert doc1['run']['engine'] == 'in-process' and doc2['run']['engine'] == 'ray'
    keys = ('MaxF', 'AvgPrec', 'PRE', 'REC', 'FPR', 'FNR', 'IoU', 'threshold', 'n_images',
            'frames', 'topics')
    assert {k: doc1[k] for k in keys} == {k: doc2[k] for k in keys}
    assert [{k: b.get(k) for k in RUN_KEYS} for b in doc1['bags']] == \
        [{k: b.get(k) for k in RUN_KEYS} for b in doc2['bags']]
    pids = {b['pid'] for b in doc2['bags'] if b['status'] == 'ok'}
    assert len(pids) == 2 and psutil.Process().pid not in pids      # two Ray workers


def test_fleet_metrics_equal_one_evaluation_of_all_frames(
        fleet_dir: pathlib.Path, small_model_path: pathlib.Path,
        tmp_path: pathlib.Path) -> None:
    rc, _ = run(['eval', '--bags', *(fleet_dir / 'bags' / f'cam{i}' for i in range(3)),
                 '--out', tmp_path / 'fleet', '--model', small_model_path, '--params', PARAMS,
                 '--workers', 2])
    assert rc == 0
    doc = json.loads((tmp_path / 'fleet' / 'metrics.json').read_text())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert evaluate_cli.main(['--model', str(small_model_path), '--dataset', 'camvid',
                                  '--data-dir', str(fleet_dir / 'camvid_union'), '--split',
                                  'val', '--out', str(tmp_path / 'single')]) == 0
    single = json.loads((tmp_path / 'single' / 'metrics.json').read_text())
    for key in ('MaxF', 'AvgPrec', 'PRE', 'REC', 'IoU', 'threshold', 'n_images'):
        assert doc[key] == single[key], key


def evaluator_pids() -> set[int]:
    pids = set()
    for proc in psutil.process_iter(['cmdline']):
        cmd = ' '.join(proc.info['cmdline'] or [])
        if '_Evaluator' in cmd and proc.pid != psutil.Process().pid:
            pids.add(proc.pid)
    return pids


class KillOnce(FleetProgress):
    """Kills the Ray worker once it has reported frames of its bag (mid-bag)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.killed: set[int] = set()

    def frames(self, n: int) -> None:
        super().frames(n)
        if n and not self.killed:
            self.killed = evaluator_pids()
            for pid in self.killed:
                psutil.Process(pid).kill()


def test_a_killed_worker_has_its_bag_retried(camvid_dir: pathlib.Path,
                                             small_model_path: pathlib.Path,
                                             tmp_path: pathlib.Path) -> None:
    long_bag = tmp_path / 'long'
    src = tmp_path / 'src'
    src.mkdir()
    for p in sorted((camvid_dir / 'val').glob('*.png'))[:40]:  # long enough to be caught
        shutil.copy(p, src)
    assert run(['make', '--images', src, '--out', long_bag])[0] == 0
    opt = EvalOptions(params_file=str(PARAMS), model=str(small_model_path))
    progress = KillOnce(1, 40, stream=io.StringIO())
    doc = run_fleet([long_bag], tmp_path / 'out', opt, workers=2, progress=progress)
    assert progress.killed, 'no worker was running the bag'
    (row,) = doc['bags']
    assert row['status'] == 'ok' and row['frames'] == 40
    assert row['pid'] not in progress.killed                 # finished by the restarted actor


def test_resume_after_an_interrupt_repeats_no_work(
        fleet_dir: pathlib.Path, small_model_path: pathlib.Path, tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bags = [fleet_dir / 'bags' / f'cam{i}' for i in range(3)]
    opt = EvalOptions(params_file=str(PARAMS), model=str(small_model_path))
    calls: list[str] = []
    real = fleet.evaluate_bag

    def counting(job: fleet.BagJob, *args: object, **kwargs: object) -> dict:
        calls.append(job.name)
        result = real(job, *args, **kwargs)
        if job.name == 'cam1':
            raise KeyboardInterrupt  # Ctrl-C after the second bag finished
        return result
    monkeypatch.setattr(fleet, 'evaluate_bag', counting)
    with pytest.raises(KeyboardInterrupt):
        run_fleet(bags, tmp_path / 'out', opt, progress=FleetProgress(3, 6, stream=io.StringIO()))
    doc = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert doc['partial'] and {b['name']: b['status'] for b in doc['bags']} == {
        'cam0': 'ok', 'cam1': 'interrupted', 'cam2': 'interrupted'}
    calls.clear()
    monkeypatch.setattr(fleet, 'evaluate_bag', lambda job, *a, **k: (calls.append(job.name),
                                                                     real(job, *a, **k))[1])
    doc = run_fleet(bags, tmp_path / 'out', opt, resume=True,
                    progress=FleetProgress(3, 4, stream=io.StringIO()))
    assert calls == ['cam2']                # cam0 kept; cam1 finished its folder before Ctrl-C
    assert doc['bags_ok'] == 3 and not doc['partial'] and doc['run']['resumed'] == 2


def test_compare_two_runs(runs: dict, tmp_path: pathlib.Path) -> None:
    _, _, ours = runs[1]
    other = tmp_path / 'other'
    shutil.copytree(ours, other)
    doc = json.loads((other / 'metrics.json').read_text())
    for b in doc['bags']:
        if b['name'] == 'cam1':
            b['MaxF'] += 0.05             # the other model was better on cam1
    (other / 'metrics.json').write_text(json.dumps(doc))
    result = compare_runs(ours, other)
    assert result['worse'] == ['cam1'] and result['bags'][0]['name'] == 'cam1'
    assert result['bags'][0]['dMaxF'] == pytest.approx(-0.05)
    assert result['overall']['MaxF'] == 0.0
    text = (ours / 'compare.md').read_text()
    assert '| cam1 |' in text and '-0.0500' in text and (ours / 'compare.csv').is_file()


def test_fleet_flags_are_checked_before_loading(small_model_path: pathlib.Path,
                                                tmp_path: pathlib.Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for extra, message in ((['--bag', tmp_path, '--workers', '2'], 'go with --bags'),
                           (['--bags', tmp_path, '--workers', '0'], '--workers must be >= 1'),
                           (['--bags', tmp_path, '--compare', tmp_path], 'no fleet report')):
        rc, _ = run(['eval', *extra, '--out', tmp_path / 'o', '--model', small_model_path])
        err = capsys.readouterr().err
        assert rc == 1 and message in err and 'Traceback' not in err


def test_progress_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    progress = FleetProgress(2, 10, every_s=0.0, stream=stream)
    progress.frames(4)
    progress.bag_done({'name': 'b', 'status': 'failed', 'reason': 'cut off'})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith('seg_bag fleet: 0/2 bags, 4/10 frames') and 'ETA' in lines[0]
    assert 'b: failed: cut off' in lines[1] and lines[-1].startswith('seg_bag fleet: 1/2 bags')
