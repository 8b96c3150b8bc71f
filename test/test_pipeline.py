"""Pipeline: segment -> optional CRF -> labels -> overlays, shared by the node, bag replay and
the evaluator."""
import numpy as np
import pytest
from test_segmenter import SIZES, _scene

from seg_perception.model.fcn8s import ModelSpec, build_fcn8s
from seg_perception.model.model_file import ModelCard, load_model
from seg_perception.runtime.pipeline import Pipeline
from seg_perception.runtime.segmenter import Segmenter


@pytest.fixture(scope='module')
def segmenter(small_model_path):
    return Segmenter(small_model_path, device='cpu', precision='float32')


@pytest.fixture(scope='module')
def pipeline(segmenter):
    return Pipeline(segmenter)


@pytest.fixture(scope='module')
def frames():
    return [_scene(h, w, i) for i, (h, w) in enumerate(SIZES)]


def test_labels_of_a_batch_of_differing_sizes(pipeline, frames):
    results = pipeline.run(frames)
    for res, (h, w) in zip(results, SIZES):
        assert res.labels.shape == (h, w) and res.labels.dtype == np.uint8
        assert set(np.unique(res.labels)) <= {0, 1}
        assert res.class_probabilities is None
    assert pipeline.last_forward_ms > 0 and pipeline.last_crf_ms == 0


def test_labels_are_probability_at_threshold(pipeline, frames):
    results = pipeline.run(frames)
    for res in results:
        np.testing.assert_array_equal(res.labels, (res.probability >= 0.5).astype(np.uint8))
    # a per-call threshold in the middle of the values gives both classes
    thr = float(np.median(results[0].probability))
    res = pipeline.run(frames[:1], threshold=thr)[0]
    np.testing.assert_array_equal(res.labels, (res.probability >= thr).astype(np.uint8))
    assert set(np.unique(res.labels)) == {0, 1}


def test_model_and_card_pair_and_resize_mode(small_model_path, frames):
    model, card = load_model(small_model_path)
    seg = Segmenter((model, card), device='cpu', input_mode='resize', input_size=(32, 64))
    pipe = Pipeline(seg, threshold=0.3)
    assert seg.precision == 'float32' and seg.model_path is None and pipe.threshold == 0.3
    res = pipe.run(frames)
    for r, (h, w) in zip(res, SIZES):
        assert r.probability.shape == (h, w)
        np.testing.assert_array_equal(r.labels, (r.probability >= 0.3).astype(np.uint8))
    seg.warmup([(40, 40)])


def test_multiclass_labels_are_argmax(frames):
    spec = ModelSpec(num_classes=3, dropout=0.0)
    model = build_fcn8s(spec)
    rng = np.random.default_rng(0)
    layer = model.get_layer('score_fr')
    kernel, bias = layer.get_weights()
    layer.set_weights([rng.normal(0, 0.05, kernel.shape).astype(np.float32), bias])
    card = ModelCard(spec=spec.to_dict(), class_names=['a', 'road', 'c'],
                     palette=[[0, 0, 0], [255, 0, 255], [0, 255, 0]])
    seg = Pipeline(Segmenter((model, card), device='cpu'))
    res = seg.run(frames[:2], class_probabilities=True)
    for r in res:
        assert r.class_probabilities.shape[-1] == 3
        np.testing.assert_array_equal(r.labels, np.argmax(r.class_probabilities, -1))
        np.testing.assert_array_equal(r.probability, r.class_probabilities[:, :, 1])
    plain = seg.run(frames[:1])[0]  # labels are argmax even without asking for probs
    assert plain.class_probabilities is None
    np.testing.assert_array_equal(plain.labels, res[0].labels)




@pytest.mark.parametrize('threshold', [1.5, -0.1])
def test_invalid_threshold(segmenter, threshold):
    with pytest.raises(ValueError, match='threshold'):
        Pipeline(segmenter, threshold=threshold)


def test_overlay_keeps_bgr_and_colours_road(pipeline, frames):
    frame = frames[0]
    labels = np.ones(frame.shape[:2], np.uint8)
    rgb = pipeline.overlay(frame, labels, alpha=1.0)
    assert (rgb == np.array(pipeline.palette[pipeline.road_class], np.uint8)).all()
    bgr = pipeline.overlay(np.ascontiguousarray(frame[:, :, ::-1]), labels, alpha=1.0,
                           bgr=True, out_bgr=True)
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])
    assert np.array_equal(pipeline.overlay(frame, labels, alpha=0.0), frame)
