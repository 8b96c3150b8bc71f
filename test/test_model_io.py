"""Model files: save/load, float16 storage, SavedModel export, corrupt files, atomic writes."""
import dataclasses
import io
import json
import zipfile

import keras
import numpy as np
import pytest

from seg_perception.core import formats
from seg_perception.export.savedmodel import export_saved_model
from seg_perception.model.model_file import (
    CARD_NAME,
    WEIGHTS_NAME,
    ModelCard,
    ModelFileError,
    load_model,
    read_card,
    save_model,
)


@pytest.fixture(scope='module')
def loaded(small_model_path):
    return load_model(small_model_path)


@pytest.fixture(scope='module')
def batch():
    return np.random.default_rng(11).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def reference(loaded, batch):
    return keras.ops.convert_to_numpy(loaded[0](batch, training=False))


def _softmax(x):
    return keras.ops.convert_to_numpy(keras.ops.softmax(x, axis=-1))


def test_save_load_identical_outputs(loaded, batch, reference, tmp_path):
    model, card = loaded
    assert np.abs(reference).max() > 0.1  # outputs really depend on the weights
    path = save_model(model, card, tmp_path / 'm.segmodel')
    model2, card2 = load_model(path)
    assert card2 == card
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model2(batch, training=False)),
                                  reference)
    assert read_card(path) == card


def test_float16_storage(loaded, batch, reference, small_model_path, tmp_path):
    model, card = loaded
    path = save_model(model, card, tmp_path / 'h.segmodel', weights_dtype='float16')
    ratio = path.stat().st_size / small_model_path.stat().st_size
    assert 0.45 < ratio < 0.55, ratio  # kernels halve; BN statistics stay float32
    with zipfile.ZipFile(path) as zf, np.load(io.BytesIO(zf.read(WEIGHTS_NAME))) as npz:
        dtypes = {k: npz[k].dtype for k in npz.files}
    assert all(d == np.float16 for k, d in dtypes.items() if k.endswith('kernel'))
    assert all(d == np.float32 for k, d in dtypes.items() if 'moving' in k)
    out = keras.ops.convert_to_numpy(load_model(path)[0](batch, training=False))
    # float16 keeps 11 significant bits (relative 4.9e-4 per weight); through ~15 layers the
    # logits move by about 1e-3 of their scale. 5e-3 of the scale leaves margin.
    assert np.abs(out - reference).max() <= 5e-3 * np.abs(reference).max()
    np.testing.assert_allclose(_softmax(out), _softmax(reference), atol=5e-3)


def test_saved_model_export(loaded, batch, reference, tmp_path):
    tf = pytest.importorskip('tensorflow')
    model, card = loaded
    out_dir = export_saved_model(model, card, tmp_path / 'saved')
    assert ModelCard.from_json((out_dir / CARD_NAME).read_text()) == card
    served = tf.saved_model.load(str(out_dir))
    probs = served.serve(tf.constant(batch))['probabilities'].numpy()
    assert probs.shape == (2, 64, 96, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _softmax(reference), atol=1e-5)
    # other sizes (multiples of 32) go through the same signature
    other = served.serve(tf.constant(batch[:1, :32, :64]))['probabilities'].numpy()
    assert other.shape == (1, 32, 64, 2)


# -- corrupt and mismatched files --------------------------------------------------------

def _rewrite(src, dst, card_text=None, weights=None, drop=()):
    """Copy a model file, optionally replacing the card text or the weights dict."""
    with zipfile.ZipFile(src) as zf:
        text = zf.read(CARD_NAME).decode()
        with np.load(io.BytesIO(zf.read(WEIGHTS_NAME))) as npz:
            arrays = {k: npz[k] for k in npz.files}
    if weights is not None:
        arrays = weights(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with zipfile.ZipFile(dst, 'w') as zf:
        if CARD_NAME not in drop:
            zf.writestr(CARD_NAME, card_text(text) if card_text else text)
        if WEIGHTS_NAME not in drop:
            zf.writestr(WEIGHTS_NAME, buf.getvalue())
    return dst


def _expect_error(path, match, **kwargs):
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path, **kwargs)
    assert str(path) in str(info.value)  # the message names the file
    return str(info.value)


def test_missing_file(tmp_path):
    _expect_error(tmp_path / 'nope.segmodel', 'not found')


def test_truncated_file(small_model_path, tmp_path):
    data = small_model_path.read_bytes()
    for keep in (len(data) // 2, len(data) - 10, 100):
        path = tmp_path / f'cut{keep}.segmodel'
        path.write_bytes(data[:keep])
        _expect_error(path, 'truncated or corrupt')


def test_random_bytes_and_empty_file(tmp_path):
    path = tmp_path / 'random.segmodel'
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    _expect_error(path, 'not a seg_perception model')
    empty = tmp_path / 'empty.segmodel'
    empty.write_bytes(b'')
    _expect_error(empty, 'not a seg_perception model')


def test_corrupted_card_bytes(small_model_path, tmp_path):
    data = bytearray(small_model_path.read_bytes())
    with zipfile.ZipFile(small_model_path) as zf:
        info = zf.getinfo(CARD_NAME)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in (5, info.compress_size // 2):
        bad = bytearray(data)
        for i in range(8):
            bad[start + offset + i] ^= 0xFF
        path = tmp_path / f'badcard{offset}.segmodel'
        path.write_bytes(bytes(bad))
        _expect_error(path, 'corrupt model card')


def test_corrupted_weight_bytes(small_model_path, tmp_path):
    data = bytearray(small_model_path.read_bytes())
    middle = len(data) // 2  # inside weights.npz (stored): caught by the zip CRC
    data[middle:middle + 16] = bytes(16)
    path = tmp_path / 'badweights.segmodel'
    path.write_bytes(bytes(data))
    _expect_error(path, 'corrupt weights')


def test_zip_without_card(small_model_path, tmp_path):
    path = _rewrite(small_model_path, tmp_path / 'nocard.segmodel', drop=(CARD_NAME,))
    _expect_error(path, f'no {CARD_NAME}')
    plain = tmp_path / 'plain.zip'
    with zipfile.ZipFile(plain, 'w') as zf:
        zf.writestr('readme.txt', 'hello')
    _expect_error(plain, f'no {CARD_NAME}')


def test_zip_without_weights(small_model_path, tmp_path):
    path = _rewrite(small_model_path, tmp_path / 'noweights.segmodel', drop=(WEIGHTS_NAME,))
    _expect_error(path, f'no {WEIGHTS_NAME}')


def _edit_card(**changes):
    def edit(text):
        data = json.loads(text)
        data.update(changes)
        return json.dumps(data)
    return edit


def test_unknown_format_version(small_model_path, tmp_path):
    path = _rewrite(small_model_path, tmp_path / 'v99.segmodel',
                    card_text=_edit_card(format_version=99))
    message = _expect_error(path, 'format version')
    assert '99' in message


@pytest.mark.parametrize('changes, match', [
    ({'format': 'something.else'}, 'model card'),
    ({'class_names': ['only_one']}, 'class names'),
    ({'threshold': 2.0}, 'threshold'),
    ({'spec': {'num_classes': 2, 'color': 'red'}}, 'unknown model spec keys'),
    ({'palette': 5}, 'invalid model card'),
])
def test_invalid_card(small_model_path, tmp_path, changes, match):
    path = _rewrite(small_model_path, tmp_path / 'bad.segmodel', card_text=_edit_card(**changes))
    _expect_error(path, match)


def test_card_not_json(small_model_path, tmp_path):
    path = _rewrite(small_model_path, tmp_path / 'notjson.segmodel',
                    card_text=lambda text: text[:-20])
    _expect_error(path, 'invalid model card')


def test_expect_classes_mismatch(small_model_path):
    message = _expect_error(small_model_path, 'expected 3', expect_classes=3)
    assert '2 classes' in message
    load_model(small_model_path, expect_classes=2)  # the right count loads


def test_weight_of_wrong_shape(small_model_path, tmp_path):
    def shrink(arrays):
        key = next(k for k in arrays if k.endswith('score_fr/kernel'))
        arrays[key] = arrays[key][..., :1]
        return arrays
    path = _rewrite(small_model_path, tmp_path / 'shape.segmodel', weights=shrink)
    message = _expect_error(path, 'has shape')
    assert 'score_fr/kernel' in message


def test_missing_and_unexpected_weights(small_model_path, tmp_path):
    def drop(arrays):
        del arrays[next(k for k in arrays if k.endswith('fc7/kernel'))]
        return arrays
    path = _rewrite(small_model_path, tmp_path / 'missing.segmodel', weights=drop)
    assert 'fc7/kernel' in _expect_error(path, 'do not fit')

    def extra(arrays):
        arrays['stranger/kernel'] = np.zeros(3, np.float32)
        return arrays
    path = _rewrite(small_model_path, tmp_path / 'extra.segmodel', weights=extra)
    assert 'stranger/kernel' in _expect_error(path, 'do not fit')


def test_weights_for_another_architecture(small_model_path, tmp_path):
    # a plain-VGG16 card over VGG16-BN weights: names do not match
    def plain(text):
        data = json.loads(text)
        data['spec']['batch_norm'] = False
        return json.dumps(data)
    path = _rewrite(small_model_path, tmp_path / 'arch.segmodel', card_text=plain)
    _expect_error(path, 'do not fit')


# -- atomic writes ------------------------------------------------------------------------

def test_atomic_write_leaves_no_temp_file(loaded, tmp_path):
    model, card = loaded
    path = save_model(model, card, tmp_path / 'a.segmodel')
    save_model(model, card, path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.segmodel']


def test_failed_write_keeps_previous_file(loaded, batch, reference, tmp_path, monkeypatch):
    model, card = loaded
    path = save_model(model, card, tmp_path / 'keep.segmodel')
    before = path.read_bytes()
    real_writestr = zipfile.ZipFile.writestr

    def failing_writestr(self, name, data, *args, **kwargs):
        if getattr(name, 'filename', name) == WEIGHTS_NAME:
            raise OSError('disk full (simulated)')
        return real_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, 'writestr', failing_writestr)
    new_card = dataclasses.replace(card, threshold=0.7)
    with pytest.raises(OSError, match='disk full'):
        save_model(model, new_card, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['keep.segmodel']
    model2, card2 = load_model(path)
    assert card2.threshold == card.threshold
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model2(batch, training=False)),
                                  reference)


def test_invalid_card_or_mismatched_model_not_written(loaded, tmp_path):
    model, card = loaded
    with pytest.raises(ValueError):
        save_model(model, dataclasses.replace(card, threshold=1.5), tmp_path / 'x.segmodel')
    with pytest.raises(ValueError):
        save_model(model, card, tmp_path / 'x.segmodel', weights_dtype='int8')
    three = ModelCard(spec={**card.spec, 'num_classes': 3}, class_names=['a', 'b', 'c'],
                      palette=[[0, 0, 0]] * 3)
    with pytest.raises(ValueError, match='outputs'):
        save_model(model, three, tmp_path / 'x.segmodel')
    assert not any(tmp_path.iterdir())
    assert formats.MODEL_EXTENSION == '.segmodel'
