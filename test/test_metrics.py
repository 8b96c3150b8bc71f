"""KITTI Road devkit metrics: hand-computed cases, a devkit-style reference, real ground truth."""
import cv2
import numpy as np
import pytest

from seg_perception.core.metrics import RoadEvaluator, quantize_probability, road_iou

# 2x4 frame: 4 road pixels, 3 non-road, 1 ignore (255).
TARGET = np.array([[1, 1, 1, 0],
                   [0, 0, 255, 1]], np.uint8)
PROB = np.array([[1.0, 0.6, 0.2, 0.8],
                 [0.0, 0.4, 0.9, 0.6]], np.float32)


def test_hand_computed_small_case():
    # Quantised values: road {255, 153, 51, 153}, non-road {204, 0, 102}.
    # Operating points (k = threshold * 255, road where value >= k):
    #   k = 0       TP 4 FP 3  P 4/7  R 1    F 8/11
    #   k 1..51     TP 4 FP 2  P 2/3  R 1    F 0.8    <- MaxF (first maximum: k = 1)
    #   k 52..102   TP 3 FP 2  P 3/5  R 3/4  F 2/3
    #   k 103..153  TP 3 FP 1  P 3/4  R 3/4  F 0.75
    #   k 154..204  TP 1 FP 1  P 1/2  R 1/4  F 1/3
    #   k 205..255  TP 1 FP 0  P 1    R 1/4  F 0.4
    ev = RoadEvaluator()
    ev.update(PROB, TARGET)
    r = ev.result(threshold=0.5)
    assert r['MaxF'] == pytest.approx(0.8)
    assert r['threshold'] == pytest.approx(1 / 255)
    assert r['PRE'] == pytest.approx(2 / 3)
    assert r['REC'] == pytest.approx(1.0)
    assert r['FPR'] == pytest.approx(2 / 3)     # FP 2 of N 3
    assert r['FNR'] == pytest.approx(0.0)
    assert r['IoU'] == pytest.approx(4 / 6)     # TP / (TP + FP + FN)
    assert r['accuracy'] == pytest.approx(5 / 7)
    # 11-point AP: recall >= 0, .1, .2 -> best precision 1; .3 ... .7 -> 0.75; .8, .9, 1 -> 2/3.
    assert r['AvgPrec'] == pytest.approx((3 * 1.0 + 5 * 0.75 + 3 * (2 / 3)) / 11)
    # Fixed threshold 0.5 -> k = 128, the k 103..153 row.
    assert r['F_at_threshold'] == pytest.approx(0.75)
    assert r['PRE_at_threshold'] == pytest.approx(0.75)
    assert r['REC_at_threshold'] == pytest.approx(0.75)
    assert r['IoU_at_threshold'] == pytest.approx(3 / 5)
    assert r['n_pixels'] == 7 and r['n_images'] == 1


def test_uint8_probability_same_as_float():
    a, b = RoadEvaluator(), RoadEvaluator()
    a.update(PROB, TARGET)
    b.update(quantize_probability(PROB), TARGET)
    assert a.result() == b.result()


def test_ignore_pixels_are_excluded():
    base = RoadEvaluator()
    base.update(PROB, TARGET)
    for value in (0.0, 0.33, 1.0):
        prob = PROB.copy()
        prob[TARGET == 255] = value
        ev = RoadEvaluator()
        ev.update(prob, TARGET)
        assert ev.result() == base.result()
    # The same frame without the ignore pixel at all gives the same counts.
    keep = TARGET.ravel() != 255
    ev = RoadEvaluator()
    ev.update(PROB.ravel()[keep][None], TARGET.ravel()[keep][None])
    assert ev.result() == base.result()


def test_accumulation_equals_concatenated_image():
    rng = np.random.default_rng(3)
    probs = [rng.random((20, 30)).astype(np.float32) for _ in range(3)]
    targets = [rng.choice(np.array([0, 1, 255], np.uint8), size=(20, 30), p=[.5, .4, .1])
               for _ in range(3)]
    ev = RoadEvaluator()
    for p, t in zip(probs, targets):
        ev.update(p, t)
    whole = RoadEvaluator()
    whole.update(np.hstack(probs), np.hstack(targets))
    r, rw = ev.result(), whole.result()
    assert r.pop('n_images') == 3 and rw.pop('n_images') == 1
    assert r == rw
    # add() of per-image evaluators is the same again
    merged = RoadEvaluator()
    for p, t in zip(probs, targets):
        one = RoadEvaluator()
        one.update(p, t)
        merged.add(one)
    assert merged.result() == ev.result()
    assert RoadEvaluator.from_state(merged.state()).result() == ev.result()


def _devkit_reference(probs, targets):
    """The KITTI Road devkit procedure, written out independently.

    Per image: float probabilities (uint8 / 255) are histogrammed over bins
    [-inf, thresholds..., inf]; FN = cumulative sum (road below threshold), FP = reversed
    cumulative sum (non-road at or above); counts summed over images; then precision,
    recall, F and the 11-point PASCAL AP over points that are not precision = recall = 0.
    """
    thresholds = np.arange(256) / 255.0
    bins = np.concatenate(([-np.inf], thresholds, [np.inf]))
    fn_total = np.zeros(256)
    fp_total = np.zeros(256)
    pos = neg = 0
    for prob, target in zip(probs, targets):
        valid = target != 255
        gt = target == 1
        fn_hist = np.histogram(prob[gt & valid], bins=bins)[0]
        fn_total += np.cumsum(fn_hist)[:256]
        fp_hist = np.histogram(prob[~gt & valid], bins=bins)[0]
        fp_total += np.flipud(np.cumsum(np.flipud(fp_hist)))[1:257]
        pos += int((gt & valid).sum())
        neg += int((~gt & valid).sum())
    tp = pos - fn_total
    tn = neg - fp_total
    recall = tp / pos
    precision = tp / (tp + fp_total + 1e-10)
    drop = (recall == 0) & (precision == 0)
    rec, pre = recall[~drop], precision[~drop]
    ap, count = 0.0, 0
    for r in np.arange(0, 1.1, 0.1):
        ap += max(pre[rec >= r])
        count += 1
    f = 2 * pre * rec / (pre + rec + 1e-10)
    k = int(f.argmax())
    return {'MaxF': f[k], 'AvgPrec': ap / count, 'PRE': pre[k], 'REC': rec[k],
            'FPR': fp_total[k] / neg, 'FNR': fn_total[k] / pos,
            'IoU': tp[k] / (tp[k] + fp_total[k] + fn_total[k]),
            'accuracy': (tp[k] + tn[k]) / (pos + neg), 'threshold': thresholds[k],
            'FN': fn_total, 'FP': fp_total}


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_equals_devkit_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    probs, targets = [], []
    for _ in range(4):
        target = rng.choice(np.array([0, 1, 255], np.uint8), size=(31, 47), p=[.45, .45, .1])
        # devkit input: a uint8 probability PNG read back as value / 255
        signal = np.clip(0.3 * target.astype(float) + rng.normal(0.35, 0.25, target.shape), 0, 1)
        probs.append(np.rint(signal * 255).astype(np.uint8) / 255.0)
        targets.append(target)
    ev = RoadEvaluator()
    for p, t in zip(probs, targets):
        ev.update(p.astype(np.float32), t)
    ours = ev.result()
    ref = _devkit_reference(probs, targets)
    curves = ev.curves()
    np.testing.assert_array_equal(curves['FN'], ref['FN'])
    np.testing.assert_array_equal(curves['FP'], ref['FP'])
    for key in ('MaxF', 'AvgPrec', 'PRE', 'REC', 'FPR', 'FNR', 'IoU', 'accuracy', 'threshold'):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key


def test_errors():
    with pytest.raises(ValueError, match='no images'):
        RoadEvaluator().result()
    ev = RoadEvaluator()
    ev.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match='no road'):
        ev.result()
    with pytest.raises(ValueError, match='differ'):
        ev.update(np.zeros((2, 3), np.float32), np.zeros((2, 2), np.uint8))


def test_road_iou():
    labels = np.array([[1, 1, 0, 0], [1, 0, 1, 1]], np.uint8)
    target = np.array([[1, 0, 0, 255], [1, 1, 0, 255]], np.uint8)
    # valid: 6 pixels; pred road {00, 01, 10, 12}; gt road {00, 10, 11}; inter 2, union 5
    assert road_iou(labels, target) == pytest.approx(2 / 5)
    assert road_iou(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)) == 1.0


def _first_kitti_gt(kitti_dir):
    from seg_perception.datasets import open_dataset
    ds = open_dataset('kitti', kitti_dir, 'training')
    assert len(ds) >= 1
    return ds.items[0], ds[0]


def test_kitti_gt_against_itself(kitti_dir):
    _, sample = _first_kitti_gt(kitti_dir)
    target = sample.target
    assert target.shape == sample.image.shape[:2]
    ev = RoadEvaluator()
    ev.update((target == 1).astype(np.float32), target)
    r = ev.result()
    assert r['MaxF'] == pytest.approx(1.0)
    assert r['PRE'] == pytest.approx(1.0)
    assert r['REC'] == pytest.approx(1.0)
    assert r['FPR'] == 0.0 and r['FNR'] == 0.0 and r['IoU'] == 1.0


def test_kitti_all_road_prediction(kitti_dir):
    item, sample = _first_kitti_gt(kitti_dir)
    # Independent decoding of the devkit ground truth: BGR file, valid = red > 0, road = blue > 0.
    gt_bgr = cv2.imread(str(item.gt), cv2.IMREAD_COLOR)
    valid = gt_bgr[:, :, 2] > 0
    road = (gt_bgr[:, :, 0] > 0) & valid
    expected_precision = road.sum() / valid.sum()
    assert 0 < expected_precision < 1

    ev = RoadEvaluator()
    ev.update(np.ones(sample.target.shape, np.float32), sample.target)
    r = ev.result()
    assert r['PRE'] == pytest.approx(expected_precision, abs=1e-9)
    assert r['REC'] == pytest.approx(1.0)
    assert r['MaxF'] == pytest.approx(2 * expected_precision / (expected_precision + 1))
    assert r['n_pixels'] == int(valid.sum())
