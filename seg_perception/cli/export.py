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

``--quantize int8`` writes the int8 (QDQ) version instead (:mod:`seg_perception.export.int8`),
calibrated on ``--calibration-frames``: real frames of the target cameras, preferably not the
check frames (the check then measures frames the calibration never saw).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from seg_perception.cli.common import check_out_dir, run_cli, setup_logging
from seg_perception.core.formats import (
    UsageError,
    backend_of_file,
    check_model_file,
    check_onnx_file,
)
from seg_perception.core.hardware import ORT_INSTALL_HINT, onnxruntime_installed
from seg_perception.core.share import SOURCE_ROOT
from seg_perception.export.frames import calibration_frames
from seg_perception.export.int8 import QuantizeError, quantize_int8
from seg_perception.export.onnx_export import ExportError, export_onnx, read_onnx_card

PROG = 'seg_export'
DEFAULT_FRAMES = SOURCE_ROOT / 'demo' / 'frames'


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``seg_export``."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True,
                   help='.segmodel file to export; or, with --quantize int8, a float32 .onnx '
                        'export to quantize without TensorFlow (e.g. on the vehicle computer)')
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
    """Check paths before anything heavy is imported (raises :class:`UsageError`), with the
    same checks as the other CLIs (:mod:`seg_perception.cli.common`).
    """
    out = pathlib.Path(args.out)
    if args.format == 'onnx':
        if out.suffix.lower() != '.onnx':
            raise UsageError(f'--out {out}: an ONNX export needs a .onnx file name')
        if out.is_dir():
            raise UsageError(f'--out {out} is a folder, not a .onnx file')
        check_out_dir(out.parent)
    else:
        check_out_dir(out)
    if backend_of_file(args.model) == 'onnxruntime':
        if args.quantize != 'int8':
            raise UsageError(f'--model {args.model} is an ONNX export: it can only be '
                             'quantized (--quantize int8); export a .segmodel otherwise')
        check_onnx_file(args.model)
    else:
        check_model_file(args.model)
    if args.reduce_range and args.quantize != 'int8':
        raise UsageError('--reduce-range needs --quantize int8')
    if args.quantize == 'int8':
        if args.format != 'onnx':
            raise UsageError('--quantize int8 needs --format onnx')
        if not args.calibration_frames or not pathlib.Path(args.calibration_frames).is_dir():
            raise UsageError(f'--quantize int8 needs --calibration-frames: a folder of real '
                           f'frames (got {args.calibration_frames})')
        if args.calibration_limit < 1:
            raise UsageError(f'--calibration-limit must be >= 1, got {args.calibration_limit}')
        if not onnxruntime_installed():
            raise UsageError(ORT_INSTALL_HINT)
    if not args.no_check and not pathlib.Path(args.check_frames).is_dir():
        raise UsageError(f'--check-frames {args.check_frames}: folder not found (or --no-check)')


def quantize(float_path: pathlib.Path, out: pathlib.Path, card: object,
             args: argparse.Namespace) -> dict[str, object]:
    """The int8 version of ``float_path`` at ``out``, calibrated on
    ``--calibration-limit`` frames spread over ``--calibration-frames``.
    """
    frames = calibration_frames(args.calibration_frames, args.calibration_limit)
    if not frames:
        raise UsageError(f'--calibration-frames {args.calibration_frames}: no images found')
    try:
        info = quantize_int8(float_path, out, frames, card, reduce_range=args.reduce_range)
    except QuantizeError as exc:
        raise UsageError(str(exc)) from None
    return {**info, 'calibration_dir': str(args.calibration_frames)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_export``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        validate(args)
        out = pathlib.Path(args.out)
        if backend_of_file(args.model) == 'onnxruntime':  # quantize an export: no TensorFlow
            quant = quantize(pathlib.Path(args.model), out, read_onnx_card(args.model), args)
            _print_quantized(quant)
        else:
            quant = export(args, out)
        print(f'wrote {out}')
        if not args.no_check:
            from seg_perception.export.check import compare  # Keras/TensorFlow
            result = compare(pathlib.Path(args.model), out, args.format, args.check_frames,
                             args.check_limit)
            if args.quantize == 'int8':
                result['quantization'] = quant
                result['check_frames_are_calibration_frames'] = (
                    pathlib.Path(args.check_frames).resolve()
                    == pathlib.Path(args.calibration_frames).resolve())
            check = out.with_name(out.name + '.check.json')
            check.write_text(json.dumps(result, indent=2))
            print(f"check on {result['frames']} real frames ({result['geometry']}): max "
                  f"|p_{result['reference']} - p_{args.format}| = "
                  f"{result['max_abs_prob_diff']:.2e}, label agreement "
                  f"{result['label_agreement'] * 100:.4f} %  ({check})")
        return 0
    return run_cli(PROG, run, ())


def _print_quantized(quant: dict[str, object]) -> None:
    print(f"{quant['precision']}: calibrated on {quant['calibration_frames']} frame(s); "
          f"{quant['float32_bytes'] / 2**20:.1f} MiB -> {quant['int8_bytes'] / 2**20:.1f} MiB")


def export(args: argparse.Namespace, out: pathlib.Path) -> dict[str, object] | None:
    """Export the ``.segmodel`` (ONNX, optionally int8, or SavedModel); returns what the
    quantization did (``None`` without it).
    """
    from seg_perception.model.model_file import ModelFileError, load_model
    try:
        model, card = load_model(args.model)
    except ModelFileError as exc:
        raise UsageError(str(exc)) from None
    quant = None
    if args.format == 'onnx':
        target = out.with_name(out.stem + '.float32.onnx') if args.quantize == 'int8' \
            else out
        try:
            export_onnx(model, card, target, args.opset)
        except ExportError as exc:
            raise UsageError(str(exc)) from None
        if args.quantize == 'int8':
            try:
                quant = quantize(target, out, card, args)
            finally:
                target.unlink(missing_ok=True)
            _print_quantized(quant)
    else:
        from seg_perception.export.savedmodel import export_saved_model  # TensorFlow
        export_saved_model(model, card, out)
    return quant


if __name__ == '__main__':
    sys.exit(main())
