r"""``seg_export``: export a ``.segmodel`` to ONNX (or a TF SavedModel) and check it.

Examples::

    seg_export --model models/road_fcn8s_vgg16.segmodel --out road.onnx
    seg_export --model runs/road/model.segmodel --format savedmodel --out road_savedmodel
    seg_export --model M.segmodel --out m.onnx --check-frames ~/data/data_road/testing/image_2
    seg_export --model M.segmodel --out m_int8.onnx --quantize int8 \
        --calibration-frames ~/data/data_road/testing/image_2 --check-frames demo/frames

The ONNX graph takes ``image`` uint8 RGB (N, H, W, 3) with dynamic H and W (multiples of
32; the Segmenter pads/scales frames to fit), normalises inside like the Keras model, and
returns ``probabilities`` float32 (N, H, W, C) softmax; the model card travels in the file's
metadata. After exporting, the exported model and the Keras model run the same real frames
(at the card geometry) and the largest absolute probability difference and the label
agreement are printed (and stored in ``<out>.check.json``).

``--quantize int8`` writes the int8 (QDQ) version instead (:mod:`seg_perception.onnx_quantize`),
calibrated on ``--calibration-frames``: real frames of the target cameras, preferably not the
check frames (the check then measures frames the calibration never saw).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from seg_perception.cli_common import (
    CliError,
    check_model_file,
    check_out_dir,
    run_cli,
    setup_logging,
)

PROG = 'seg_export'
DEFAULT_FRAMES = pathlib.Path(__file__).resolve().parent.parent / 'demo' / 'frames'


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``seg_export``."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='.segmodel file to export')
    p.add_argument('--out', required=True, help='output .onnx file (or SavedModel folder)')
    p.add_argument('--format', choices=['onnx', 'savedmodel'], default='onnx')
    p.add_argument('--opset', type=int, help='ONNX opset (default: the exporter\'s)')
    p.add_argument('--check-frames', default=str(DEFAULT_FRAMES),
                   help='folder (searched recursively) of real frames to compare Keras and '
                        'the export on (default: demo/frames)')
    p.add_argument('--check-limit', type=int, default=8, help='frames compared (default 8)')
    p.add_argument('--no-check', action='store_true', help='skip the comparison')
    p.add_argument('--quantize', choices=['none', 'int8'], default='none',
                   help='onnx: post-training int8 quantization (ONNX Runtime static QDQ)')
    p.add_argument('--calibration-frames', metavar='DIR',
                   help='with --quantize int8: folder (searched recursively) of real frames '
                        'to calibrate activation ranges on')
    p.add_argument('--reduce-range', action='store_true',
                   help='with --quantize int8: 7-bit weights, for x86 CPUs without VNNI '
                        '(AVX2/AVX-512 only), where 8-bit weights can saturate')
    p.add_argument('--calibration-limit', type=int, default=32,
                   help='calibration frames used (default 32, spread over the folder)')
    p.add_argument('-v', '--verbose', action='store_true')
    return p


def validate(args: argparse.Namespace) -> None:
    """Check paths before anything heavy is imported (raises :class:`CliError`), with the
    same checks as the other CLIs (:mod:`seg_perception.cli_common`).
    """
    out = pathlib.Path(args.out)
    if args.format == 'onnx':
        if out.suffix.lower() != '.onnx':
            raise CliError(f'--out {out}: an ONNX export needs a .onnx file name')
        if out.is_dir():
            raise CliError(f'--out {out} is a folder, not a .onnx file')
        check_out_dir(out.parent)
    else:
        check_out_dir(out)
    check_model_file(args.model)
    if args.reduce_range and args.quantize != 'int8':
        raise CliError('--reduce-range needs --quantize int8')
    if args.quantize == 'int8':
        if args.format != 'onnx':
            raise CliError('--quantize int8 needs --format onnx')
        if not args.calibration_frames or not pathlib.Path(args.calibration_frames).is_dir():
            raise CliError(f'--quantize int8 needs --calibration-frames: a folder of real '
                           f'frames (got {args.calibration_frames})')
        if args.calibration_limit < 1:
            raise CliError(f'--calibration-limit must be >= 1, got {args.calibration_limit}')
        from seg_perception.ort_backend import OrtError, require_onnxruntime
        try:
            require_onnxruntime()
        except OrtError as exc:
            raise CliError(str(exc)) from None
    if not args.no_check and not pathlib.Path(args.check_frames).is_dir():
        raise CliError(f'--check-frames {args.check_frames}: folder not found (or --no-check)')


def compare(model_path: pathlib.Path, exported: pathlib.Path, fmt: str, frames_dir: str,
            limit: int) -> dict[str, object]:
    """Keras vs export on real frames at the card geometry: max |dp| and label agreement."""
    import numpy as np

    from seg_perception.image_io import read_rgb
    from seg_perception.segmenter import Segmenter

    files = image_files(frames_dir)[:limit]
    if not files:
        raise _Fail(f'--check-frames {frames_dir}: no images found')
    keras_seg = Segmenter(model_path, precision='float32')
    if fmt == 'onnx':
        other = Segmenter(exported, backend='onnxruntime', providers=('cpu',))

        def run_export(batch: np.ndarray) -> np.ndarray:
            return other.forward(batch, False)[0]
    else:
        import tensorflow as tf
        serve = tf.saved_model.load(str(exported)).signatures['serve']

        def run_export(batch: np.ndarray) -> np.ndarray:
            probs = serve(image=tf.constant(batch))['probabilities'].numpy()
            return probs[..., keras_seg.road_class]
    max_diff, agree, pixels = 0.0, 0, 0
    thr = keras_seg.card.threshold
    for f in files:
        batch, _ = keras_seg.prepare([read_rgb(f)])
        a = keras_seg.forward(batch, False)[0]
        b = run_export(batch)
        max_diff = max(max_diff, float(np.abs(a - b).max()))
        agree += int(((a >= thr) == (b >= thr)).sum())
        pixels += a.size
    return {'frames': len(files), 'frames_dir': str(frames_dir),
            'geometry': f'{keras_seg.input_mode} {list(keras_seg.input_size)}',
            'max_abs_prob_diff': max_diff, 'label_agreement': agree / pixels}


def image_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Camera frames (PNG/JPEG) under ``folder`` (recursively), sorted; label images in
    ground-truth folders (CamVid ``*annot``, KITTI ``gt_*``) are not frames and are skipped.
    """
    root = pathlib.Path(folder)
    return sorted(p for p in root.rglob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg')
                  and not any(d.endswith('annot') or d.startswith('gt_')
                              for d in p.relative_to(root).parts[:-1]))


def calibration_frames(folder: str | pathlib.Path, limit: int) -> list[object]:
    """Up to ``limit`` frames of :func:`image_files` of ``folder``, spread evenly over it,
    as (H, W, 3) uint8 RGB arrays ([] when there are none).
    """
    import numpy as np

    from seg_perception.image_io import read_rgb

    files = image_files(folder)
    n = min(limit, len(files))
    return [read_rgb(files[int(i)]) for i in np.linspace(0, len(files) - 1, n).round()]


def quantize(float_path: pathlib.Path, out: pathlib.Path, card: object,
             args: argparse.Namespace) -> dict[str, object]:
    """The int8 version of ``float_path`` at ``out``, calibrated on
    ``--calibration-limit`` frames spread over ``--calibration-frames``.
    """
    from seg_perception.onnx_quantize import QuantizeError, quantize_int8

    frames = calibration_frames(args.calibration_frames, args.calibration_limit)
    if not frames:
        raise _Fail(f'--calibration-frames {args.calibration_frames}: no images found')
    try:
        info = quantize_int8(float_path, out, frames, card, reduce_range=args.reduce_range)
    except QuantizeError as exc:
        raise _Fail(str(exc)) from None
    return {**info, 'calibration_dir': str(args.calibration_frames)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_export``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        validate(args)
        from seg_perception.model_io import ModelFileError, load_model
        try:
            model, card = load_model(args.model)
        except ModelFileError as exc:
            raise _Fail(str(exc)) from None
        out = pathlib.Path(args.out)
        if args.format == 'onnx':
            from seg_perception.onnx_export import ExportError, export_onnx
            target = out.with_name(out.stem + '.float32.onnx') if args.quantize == 'int8' \
                else out
            try:
                export_onnx(model, card, target, args.opset)
            except ExportError as exc:
                raise _Fail(str(exc)) from None
            if args.quantize == 'int8':
                try:
                    quant = quantize(target, out, card, args)
                finally:
                    target.unlink(missing_ok=True)
                print(f"{quant['precision']}: calibrated on {quant['calibration_frames']} "
                      f"frame(s); "
                      f"{quant['float32_bytes'] / 2**20:.1f} MiB -> "
                      f"{quant['int8_bytes'] / 2**20:.1f} MiB")
        else:
            from seg_perception.model_io import export_saved_model
            export_saved_model(model, card, out)
        print(f'wrote {out}')
        if not args.no_check:
            result = compare(pathlib.Path(args.model), out, args.format, args.check_frames,
                             args.check_limit)
            if args.quantize == 'int8':
                result['quantization'] = quant
                result['check_frames_are_calibration_frames'] = (
                    pathlib.Path(args.check_frames).resolve()
                    == pathlib.Path(args.calibration_frames).resolve())
            check = out.with_name(out.name + '.check.json')
            check.write_text(json.dumps(result, indent=2))
            print(f"check on {result['frames']} real frames ({result['geometry']}): max |p_keras"
                  f" - p_{args.format}| = {result['max_abs_prob_diff']:.2e}, label agreement "
                  f"{result['label_agreement'] * 100:.4f} %  ({check})")
        return 0
    return run_cli(PROG, run, (_Fail, CliError))


class _Fail(Exception):
    pass


if __name__ == '__main__':
    sys.exit(main())
