"""seg_bag make / eval / live on real CamVid frames, and its errors on bad bags."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from seg_perception.bag.bagfile import IMAGE, BagReader, BagWriter, header, image_msg
from seg_perception.cli import bag as cli
from seg_perception.cli import evaluate as evaluate_cli
from seg_perception.core.image_io import read_gray
from seg_perception.core.image_msgs import decode_image, decode_mono8
from seg_perception.datasets import open_dataset
from seg_perception.evaluation.run import REQUIRED_KEYS

REPO = pathlib.Path(__file__).resolve().parent.parent
PARAMS = REPO / 'config' / 'road.yaml'
N_FRAMES = 5
START = 1_700_000_000  # seconds; stamps of made bags are START + i / rate
COMPARED = (*REQUIRED_KEYS, 'accuracy', 'IoU_at_threshold', 'F_at_threshold')


def run(main, args: list) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([str(a) for a in args])
    return rc, out.getvalue()


def one_error_line(err: str, prog: str = 'seg_bag') -> str:
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f'{prog}: error:')]
    assert len(lines) == 1, err
    return lines[0]


def eval_args(bag: pathlib.Path, out: pathlib.Path, model: pathlib.Path) -> list:
    return ['eval', '--bag', bag, '--out', out, '--model', model, '--params', PARAMS]


def read_all(bag: pathlib.Path) -> tuple[BagReader, dict[str, list]]:
    reader = BagReader(bag)
    msgs: dict[str, list] = {}
    for topic, msgtype, t, raw in reader.messages():
        msgs.setdefault(topic, []).append((t, reader.deserialize(raw, msgtype)))
    reader.close()
    return reader, msgs


@pytest.fixture(scope='module')
def camvid_small(camvid_dir: pathlib.Path, tmp_path_factory: pytest.TempPathFactory,
                 ) -> pathlib.Path:
    """CamVid layout with the first N_FRAMES real val frames."""
    root = tmp_path_factory.mktemp('camvid')
    for sub in ('val', 'valannot'):
        (root / sub).mkdir()
    for p in sorted((camvid_dir / 'val').glob('*.png'))[:N_FRAMES]:
        shutil.copy(p, root / 'val' / p.name)
        shutil.copy(camvid_dir / 'valannot' / p.name, root / 'valannot' / p.name)
    return root


@pytest.fixture(scope='module')
def mcap_bag(camvid_small: pathlib.Path, tmp_path_factory: pytest.TempPathFactory,
             ) -> pathlib.Path:
    bag = tmp_path_factory.mktemp('bags') / 'camvid_mcap'
    rc, stdout = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels',
                                camvid_small / 'valannot', '--label-format', 'camvid',
                                '--out', bag, '--rate', '5', '--start-time', START])
    assert rc == 0 and f'{N_FRAMES} frame(s)' in stdout
    return bag


@pytest.fixture(scope='module')
def reference(camvid_small: pathlib.Path, small_model_path: pathlib.Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict:
    """seg_evaluate's metrics on the same frames (same model, same input mode)."""
    out = tmp_path_factory.mktemp('reference')
    rc, _ = run(evaluate_cli.main, ['--model', small_model_path, '--dataset', 'camvid',
                                    '--data-dir', camvid_small, '--split', 'val', '--out', out])
    assert rc == 0
    return json.loads((out / 'metrics.json').read_text())


@pytest.fixture(scope='module')
def mcap_eval(mcap_bag: pathlib.Path, small_model_path: pathlib.Path,
              tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp('eval_mcap')
    rc, stdout = run(cli.main, [*eval_args(mcap_bag, out, small_model_path), '--write-bag'])
    assert rc == 0 and '/camera/image: 5 frame(s)' in stdout
    return out


# -- make --------------------------------------------------------------------------------
def test_make_writes_images_ground_truth_and_camera_info(mcap_bag: pathlib.Path,
                                                          camvid_small: pathlib.Path) -> None:
    reader, msgs = read_all(mcap_bag)
    assert reader.storage == 'mcap'
    assert {t: i.msgtype for t, i in reader.topics.items()} == {
        '/camera/image': IMAGE, '/camera/road_gt': IMAGE,
        '/camera/camera_info': 'sensor_msgs/msg/CameraInfo'}
    dataset = open_dataset('camvid', camvid_small, 'val')
    stamps = [START * 10**9 + i * 200_000_000 for i in range(N_FRAMES)]
    for topic in reader.topics:
        assert [t for t, _ in msgs[topic]] == stamps, topic
        assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                for _, m in msgs[topic]] == stamps
    for i, sample in enumerate(dataset):
        image = msgs['/camera/image'][i][1]
        assert image.encoding == 'rgb8' and image.header.frame_id == 'camera'
        assert np.array_equal(decode_image(image), sample.image)
        assert np.array_equal(decode_mono8(msgs['/camera/road_gt'][i][1]), sample.target)
        info = msgs['/camera/camera_info'][i][1]
        assert (info.width, info.height) == (480, 360)


# -- eval --------------------------------------------------------------------------------
def test_eval_matches_seg_evaluate(mcap_eval: pathlib.Path, reference: dict) -> None:
    doc = json.loads((mcap_eval / 'metrics.json').read_text())
    for key in COMPARED:
        assert doc[key] == reference[key], key
    assert doc['n_images'] == N_FRAMES and doc['partial'] is False
    topic = doc['topics']['/camera/image']
    assert topic['frames'] == N_FRAMES and topic['MaxF'] == reference['MaxF']
    rows = list(csv.DictReader((mcap_eval / 'frames.csv').open()))
    assert [int(r['stamp_ns']) for r in rows] == [START * 10**9 + i * 200_000_000
                                                 for i in range(N_FRAMES)]
    assert all(r['topic'] == '/camera/image' and 0 <= float(r['iou']) <= 1 for r in rows)
    assert (mcap_eval / 'pr_curve.png').is_file() and (mcap_eval / 'report.md').is_file()
    assert len(list((mcap_eval / 'overlays').glob('*.png'))) == 4


def test_eval_runs_with_rclpy_unimportable(mcap_bag: pathlib.Path, mcap_eval: pathlib.Path,
                                           small_model_path: pathlib.Path,
                                           tmp_path: pathlib.Path) -> None:
    """The offline replay reads the node's params file and runs its pipeline without rclpy
    (a meta-path hook makes every ``rclpy`` import fail); same metrics as with it.
    """
    from test_params import BLOCK_RCLPY
    out = tmp_path / 'eval'
    code = BLOCK_RCLPY + ('from seg_perception.cli import bag as cli\n'
                          'rc = cli.main(sys.argv[1:])\n'
                          'assert "rclpy" not in sys.modules\nsys.exit(rc)\n')
    args = [str(a) for a in eval_args(mcap_bag, out, small_model_path)]
    result = subprocess.run([sys.executable, '-c', code, *args], capture_output=True,
                            text=True, timeout=300, cwd=pathlib.Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((out / 'metrics.json').read_text())
    ref = json.loads((mcap_eval / 'metrics.json').read_text())
    assert doc['run']['params_file'] == ref['run']['params_file'] != 'none (node defaults)'
    for key in COMPARED:
        assert doc[key] == ref[key], key


def test_write_bag_holds_inputs_and_outputs(mcap_eval: pathlib.Path,
                                            mcap_bag: pathlib.Path) -> None:
    reader, msgs = read_all(mcap_eval / 'bag')
    assert set(reader.topics) == {'/camera/image', '/camera/camera_info', '/camera/road_gt',
                                  '/camera/road/label', '/camera/road/overlay'}
    assert all(i.count == N_FRAMES for i in reader.topics.values())
    _, inputs = read_all(mcap_bag)
    rows = list(csv.DictReader((mcap_eval / 'frames.csv').open()))
    for i, (t, label) in enumerate(msgs['/camera/road/label']):
        t_in, image = inputs['/camera/image'][i]
        assert t == t_in and label.header == image.header
        labels = decode_mono8(label)
        assert labels.shape == (360, 480) and set(np.unique(labels)) <= {0, 1}
        assert abs(float(labels.mean()) - float(rows[i]['road_fraction'])) < 1e-6
        overlay = msgs['/camera/road/overlay'][i][1]
        assert overlay.encoding == 'rgb8' and overlay.header == image.header
        assert decode_image(overlay).shape == (360, 480, 3)
    for topic in ('/camera/image', '/camera/road_gt'):
        assert [bytes(m.data) for _, m in msgs[topic]] == [bytes(m.data)
                                                           for _, m in inputs[topic]]


@pytest.mark.parametrize('storage,compressed', [('sqlite3', 'png'), ('sqlite3', None),
                                                ('mcap', 'jpeg')])
def test_storage_and_compressed_images(storage: str, compressed: str | None,
                                       camvid_small: pathlib.Path,
                                       small_model_path: pathlib.Path, reference: dict,
                                       tmp_path: pathlib.Path) -> None:
    bag = tmp_path / 'bag'
    extra = ['--compressed', compressed] if compressed else []
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels',
                           camvid_small / 'valannot', '--out', bag, '--storage', storage,
                           '--start-time', START, *extra])
    assert rc == 0
    reader = BagReader(bag)
    topic = '/camera/image/compressed' if compressed else '/camera/image'
    assert reader.storage == storage and reader.image_topics() == sorted(
        [topic, '/camera/road_gt'])
    reader.close()
    out = tmp_path / 'out'
    rc, _ = run(cli.main, [*eval_args(bag, out, small_model_path), '--limit', '3',
                           '--overlays', '0'])
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['n_images'] == 3 and list(doc['topics']) == [topic]
    for key in REQUIRED_KEYS:
        assert 0 <= doc[key] <= (3 if key == 'n_images' else 1)
    if compressed != 'jpeg':  # lossless: the very numbers of a raw bag of the same frames
        ref_out = tmp_path / 'ref'
        rc, _ = run(evaluate_cli.main, ['--model', small_model_path, '--dataset', 'camvid',
                                        '--data-dir', camvid_small, '--split', 'val',
                                        '--limit', '3', '--out', ref_out, '--overlays', '0'])
        ref = json.loads((ref_out / 'metrics.json').read_text())
        assert all(doc[k] == ref[k] for k in COMPARED)


def test_eval_crf_from_params_matches_seg_evaluate(mcap_bag: pathlib.Path,
                                                   camvid_small: pathlib.Path,
                                                   small_model_path: pathlib.Path,
                                                   tmp_path: pathlib.Path) -> None:
    # crf.* of config/road.yaml are the CRFParams defaults seg_evaluate uses
    rc, _ = run(cli.main, [*eval_args(mcap_bag, tmp_path / 'bag', small_model_path), '--limit',
                           '2', '--crf-scale', '0.25', '--overlays', '0'])
    assert rc == 0
    rc, _ = run(evaluate_cli.main, ['--model', small_model_path, '--dataset', 'camvid',
                                    '--data-dir', camvid_small, '--split', 'val', '--limit',
                                    '2', '--out', tmp_path / 'ref', '--crf-scale', '0.25',
                                    '--overlays', '0'])
    assert rc == 0
    doc, ref = (json.loads((tmp_path / d / 'metrics.json').read_text()) for d in ('bag', 'ref'))
    assert doc['run']['crf'] is True and doc['run']['crf_scale'] == 0.25
    assert all(doc[k] == ref[k] for k in COMPARED)


def test_bag_without_metadata_yaml(mcap_bag: pathlib.Path, small_model_path: pathlib.Path,
                                   reference: dict, tmp_path: pathlib.Path) -> None:
    bag = tmp_path / 'bag'
    shutil.copytree(mcap_bag, bag)
    (bag / 'metadata.yaml').unlink()  # what a killed recorder leaves behind
    rc, _ = run(cli.main, eval_args(bag, tmp_path / 'out', small_model_path))
    assert rc == 0
    doc = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert all(doc[k] == reference[k] for k in COMPARED)


# -- bad inputs --------------------------------------------------------------------------
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_ending_mid_write_keeps_partial_results(
        storage: str, camvid_small: pathlib.Path, small_model_path: pathlib.Path,
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / 'bag'
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels',
                           camvid_small / 'valannot', '--out', bag, '--storage', storage])
    assert rc == 0
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3')]
    with storage_file.open('r+b') as f:
        f.truncate(int(storage_file.stat().st_size * 0.7))
    out = tmp_path / 'out'
    rc, _ = run(cli.main, eval_args(bag, out, small_model_path))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and 'mid-write' in line and str(out) in line
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['partial'] is True and 'mid-write' in doc['error']
    assert 1 <= doc['frames'] < N_FRAMES
    assert len(list(csv.DictReader((out / 'frames.csv').open()))) == doc['frames']


def test_db3_cut_off_before_its_statistics_table_is_still_read(
        camvid_small: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """SQLite may write sqlite_stat1 (ANALYZE / PRAGMA optimize at close) at the end of the
    file; a cut there must not make the whole bag unreadable."""
    import sqlite3

    from seg_perception.bag.bagfile import TruncatedBagError
    bag = tmp_path / 'bag'
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels',
                           camvid_small / 'valannot', '--out', bag, '--storage', 'sqlite3'])
    assert rc == 0
    (db3,) = bag.glob('*.db3')
    con = sqlite3.connect(db3)
    con.execute('ANALYZE')
    con.commit()
    (stat_root,) = con.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()
    page_size = con.execute('PRAGMA page_size').fetchone()[0]
    con.close()
    cut = int(db3.stat().st_size * 0.7)
    assert stat_root > cut // page_size  # the statistics table lies beyond the cut
    with db3.open('r+b') as f:
        f.truncate(cut)
    reader = BagReader(bag)
    read = 0
    with pytest.raises(TruncatedBagError, match='mid-write'):
        for _ in reader.messages(set(reader.topics)):
            read += 1
    reader.close()
    assert read >= 1


def _write_bag(path: pathlib.Path, frames: list[tuple[str, str, np.ndarray]]) -> None:
    """A bag of raw Image messages: (topic, encoding, pixels), one stamp per frame index.
    The encoding is only a label: the bytes are those of mono8 / rgb8 pixels."""
    with BagWriter(path) as writer:
        for i, (topic, encoding, pixels) in enumerate(frames):
            writer.add_topic(topic, IMAGE)
            t = (START + i) * 10**9
            msg = image_msg(pixels, 'mono8' if pixels.ndim == 2 else 'rgb8', header(t, 'cam'))
            msg.encoding = encoding
            writer.write(topic, t, msg)


def test_bad_bags(small_model_path: pathlib.Path, tmp_path: pathlib.Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    model = small_model_path
    rc, _ = run(cli.main, eval_args(tmp_path / 'missing', tmp_path / 'o1', model))
    assert rc == 1 and 'bag not found' in one_error_line(capsys.readouterr().err)

    garbage = tmp_path / 'garbage.mcap'
    garbage.write_bytes(b'not an mcap file at all' * 10)
    rc, _ = run(cli.main, eval_args(garbage, tmp_path / 'o2', model))
    assert rc == 1 and 'garbage.mcap' in one_error_line(capsys.readouterr().err)

    folder = tmp_path / 'not_a_bag'
    folder.mkdir()
    (folder / 'notes.txt').write_text('hello')
    rc, _ = run(cli.main, eval_args(folder, tmp_path / 'o3', model))
    assert rc == 1 and 'not a rosbag2 folder' in one_error_line(capsys.readouterr().err)

    info_only = tmp_path / 'info_only'
    with BagWriter(info_only) as writer:
        from seg_perception.bag.bagfile import CAMERA_INFO, camera_info_msg
        writer.add_topic('/camera/camera_info', CAMERA_INFO)
        writer.write('/camera/camera_info', 1, camera_info_msg(4, 3, header(1, 'cam')))
    rc, _ = run(cli.main, eval_args(info_only, tmp_path / 'o4', model))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and 'no image topic' in line and '/camera/camera_info' in line

    rc, _ = run(cli.main, [*eval_args(info_only, tmp_path / 'o5', model), '--topics', '/x'])
    assert rc == 1 and 'topic /x not in the bag' in one_error_line(capsys.readouterr().err)


def test_unknown_encoding(small_model_path: pathlib.Path, tmp_path: pathlib.Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / 'bag'
    pixels = np.zeros((64, 96, 3), np.uint8)
    _write_bag(bag, [('/camera/image', 'weird24', pixels)])
    rc, _ = run(cli.main, eval_args(bag, tmp_path / 'out', small_model_path))
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and "unsupported encoding 'weird24'" in line and '/camera/image' in line


def test_ground_truth_of_another_size(small_model_path: pathlib.Path, tmp_path: pathlib.Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 96, 3), np.uint8) for _ in range(2)]
    gts = [np.ones((64, 96), np.uint8), np.ones((32, 48), np.uint8)]  # the 2nd is wrong
    bag = tmp_path / 'bag'
    with BagWriter(bag) as writer:
        writer.add_topic('/cam/image', IMAGE)
        writer.add_topic('/cam/road_gt', IMAGE)
        for i in range(2):
            t = (START + i) * 10**9
            writer.write('/cam/image', t, image_msg(frames[i], 'rgb8', header(t, 'cam')))
            writer.write('/cam/road_gt', t, image_msg(gts[i], 'mono8', header(t, 'cam')))
    out = tmp_path / 'out'
    rc, _ = run(cli.main, [*eval_args(bag, out, small_model_path), '--batch-size', '1'])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and 'ground truth on /cam/road_gt' in line and '48x32' in line
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['partial'] is True and doc['frames'] == 1 and doc['n_images'] == 1


def test_make_bad_inputs(camvid_small: pathlib.Path, tmp_path: pathlib.Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run(cli.main, ['make', '--images', tmp_path / 'none', '--out', tmp_path / 'b1'])
    assert rc == 1 and 'none' in one_error_line(capsys.readouterr().err)

    labels = tmp_path / 'labels'
    shutil.copytree(camvid_small / 'valannot', labels)
    missing = sorted(labels.glob('*.png'))[2]
    missing.unlink()
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels', labels,
                           '--out', tmp_path / 'b2'])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and missing.name in line and not (tmp_path / 'b2').exists()

    small = sorted(labels.glob('*.png'))[1]
    gt = read_gray(small)
    cv2.imwrite(str(small), gt[: gt.shape[0] // 2])
    shutil.copy(camvid_small / 'valannot' / missing.name, missing)
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--labels', labels,
                           '--out', tmp_path / 'b3'])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and 'does not match' in line and not (tmp_path / 'b3').exists()

    (tmp_path / 'exists').mkdir()
    rc, _ = run(cli.main, ['make', '--images', camvid_small / 'val', '--out',
                           tmp_path / 'exists'])
    assert rc == 1 and 'exists already' in one_error_line(capsys.readouterr().err)


# -- live --------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def live_bag(camvid_dir: pathlib.Path, tmp_path_factory: pytest.TempPathFactory,
             ) -> pathlib.Path:
    """20 real CamVid val frames (downscaled to 160x120 to keep the node fast), 10 Hz."""
    root = tmp_path_factory.mktemp('live')
    for sub in ('images', 'labels'):
        (root / sub).mkdir()
    for p in sorted((camvid_dir / 'val').glob('*.png'))[:20]:
        image = cv2.imread(str(p))
        labels = cv2.imread(str(camvid_dir / 'valannot' / p.name), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(root / 'images' / p.name),
                    cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA))
        cv2.imwrite(str(root / 'labels' / p.name),
                    cv2.resize(labels, (160, 120), interpolation=cv2.INTER_NEAREST))
    bag = root / 'bag'
    rc, _ = run(cli.main, ['make', '--images', root / 'images', '--labels', root / 'labels',
                           '--label-format', 'camvid', '--out', bag, '--rate', '10'])
    assert rc == 0
    return bag


def _seg_bag() -> list[str]:
    script = pathlib.Path(sys.executable).parent / 'seg_bag'
    return [str(script)] if script.is_file() else [sys.executable, '-m',
                                                     'seg_perception.cli.bag']


def test_live_against_the_node(live_bag: pathlib.Path, small_model_path: pathlib.Path,
                               tmp_path: pathlib.Path, ros, ros_namespace: str,
                               node_processes) -> None:
    pytest.importorskip('seg_perception.ros.node', reason='the road_segmentation node module is '
                                                      'not there yet')
    from ros_harness import executable, ros_arguments
    ns = ros_namespace + '/camera'
    node = node_processes(executable('road_segmentation', 'seg_perception.ros.node'),
                          ros_arguments([PARAMS], {'model_path': str(small_model_path),
                                                   'publish_probability': True},
                                        namespace=ns), name='road_segmentation')
    node.wait_ready(ros, publishers=[f'{ns}/road/label'], subscribers=[f'{ns}/image'],
                    timeout=240)
    out = tmp_path / 'live'
    result = subprocess.run([*_seg_bag(), 'live', '--bag', str(live_bag), '--out', str(out),
                             '--namespace', ns, '--timeout', '60'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:] + node.log_tail()
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['frames_published'] == 20 and doc['partial'] is False
    assert 1 <= doc['outputs_received'] <= 20
    assert doc['outputs_received'] + doc['dropped_frames'] == 20
    lat = doc['latency_ms']['header_to_receive']
    assert 0 < lat['p50'] <= lat['p95'] <= lat['max'] < 60_000
    assert doc['latency_ms']['publish_to_receive']['p50'] > 0
    acc = doc['accuracy']
    assert doc['accuracy_source'] == 'probability'
    assert 0 <= acc['MaxF'] <= 1 and 0 <= acc['IoU_at_threshold'] <= 1
    assert acc['n_images'] == doc['outputs_received']
    rows = list(csv.DictReader((out / 'frames.csv').open()))
    assert len(rows) == 20 and sum(1 for r in rows if r['received_ns']) == doc[
        'outputs_received']
    reader = BagReader(out / 'recorded')
    assert reader.topics[f'{ns}/image'].count == 20
    assert reader.topics[f'{ns}/road/label'].count == doc['outputs_received']
    assert reader.topics[f'{ns}/camera_info'].count == 20
    assert reader.topics[f'{ns}/road/camera_info'].count >= 1  # relayed by the node
    reader.close()
    assert 'Latency' in (out / 'report.md').read_text()
    node.stop_and_check()


def test_live_without_a_node(live_bag: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / 'live'
    result = subprocess.run([*_seg_bag(), 'live', '--bag', str(live_bag), '--out', str(out),
                             '--namespace', '/nobody_here', '--timeout', '1.5'],
                            capture_output=True, text=True, timeout=120)
    line = one_error_line(result.stderr)
    assert result.returncode == 1 and 'no road_segmentation node' in line
    assert '/nobody_here/image' in line
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['partial'] is True and doc['frames_published'] == 0


# -- road/grid in the output bag ---------------------------------------------------------
KITTI_POSE = [0.0, 0.0, 1.65, 0.0, 0.0, 0.0]


def test_write_bag_holds_the_grid_when_the_params_enable_it(
        kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
        tmp_path: pathlib.Path) -> None:
    from seg_perception.geometry.camera import CameraModel, optical_pose, pose_matrix
    from seg_perception.geometry.ground_grid import GridSpec, build_tables

    subset = tmp_path / 'frames'
    subset.mkdir()
    shutil.copy(kitti_dir / 'training' / 'image_2' / 'um_000000.png', subset)
    calib = kitti_dir / 'training' / 'calib' / 'um_000000.txt'
    params = tmp_path / 'grid.yaml'
    params.write_text('/**:\n  ros__parameters:\n    grid.enabled: true\n'
                      f'    grid.camera_pose: {KITTI_POSE}\n')
    for name, extra in (('calibrated', ['--calib', calib]), ('uncalibrated', [])):
        rc, _ = run(cli.main, ['make', '--images', subset, '--out', tmp_path / name, *extra])
        assert rc == 0
        rc, _ = run(cli.main, ['eval', '--bag', tmp_path / name, '--out', tmp_path / f'{name}_e',
                               '--model', small_model_path, '--params', params, '--write-bag'])
        assert rc == 0
    doc = json.loads((tmp_path / 'calibrated_e' / 'metrics.json').read_text())
    assert doc['output_bag']['topics']['/camera/road/grid'] == 1
    _, msgs = read_all(tmp_path / 'calibrated_e' / 'bag')
    (_, grid), = msgs['/camera/road/grid']
    (_, image), = msgs['/camera/image']
    (_, info), = msgs['/camera/camera_info']
    assert (grid.header.stamp.sec, grid.header.stamp.nanosec) == (image.header.stamp.sec,
                                                                  image.header.stamp.nanosec)
    assert grid.header.frame_id == 'base_link' and (grid.info.width, grid.info.height) == (400,
                                                                                          200)
    camera = CameraModel.from_camera_info(info.width, info.height, info.k, info.d, 'plumb_bob')
    spec = GridSpec(frame='base_link', resolution=0.1, size=(40.0, 20.0), origin=(0.0, -10.0))
    known = build_tables(camera, optical_pose(pose_matrix(*KITTI_POSE)), spec, 40.0).known
    values = np.asarray(grid.data, np.int8).reshape(200, 400)
    assert np.array_equal(values >= 0, known) and known.sum() > 1000
    doc = json.loads((tmp_path / 'uncalibrated_e' / 'metrics.json').read_text())
    assert doc['output_bag']['topics']['/camera/road/grid'] == 0
    assert 'degenerate camera_info' in doc['output_bag']['no_grid']['/camera']
