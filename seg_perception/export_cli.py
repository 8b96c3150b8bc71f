r"""``seg_export``: export a ``.segmodel`` to ONNX (or a TF SavedModel) and check it.

Examples::

    seg_export --model models/road_fcn8s_vgg16.segmodel --out road.onnx
    seg_export --model runs/road/model.segmodel --format savedmodel --out road_savedmodel
    seg_export --model M.segmodel --out m.onnx --check-frames ~/data/data_road/testing/image_2

The ONNX graph takes ``image`` uint8 RGB (N, H, W, 3) with dynamic H and W (multiples of
32; the Segmenter pads/scales frames to fit), normalises inside like the Keras model, and
returns ``probabilities`` float32 (N, H, W, C) softmax; the model card travels in the file's
metadata. After exporting, the exported model and the Keras model run the same real frames
(at the card geometry) and the largest absolute probability difference and the label
agreement are printed (and stored in ``<out>.check.json``).
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
    if not args.no_check and not pathlib.Path(args.check_frames).is_dir():
        raise CliError(f'--check-frames {args.check_frames}: folder not found (or --no-check)')


def compare(model_path: pathlib.Path, exported: pathlib.Path, fmt: str, frames_dir: str,
            limit: int) -> dict[str, object]:
    """Keras vs export on real frames at the card geometry: max |dp| and label agreement."""
    import numpy as np

    from seg_perception.image_io import read_rgb
    from seg_perception.segmenter import Segmenter

    files = sorted(p for p in pathlib.Path(frames_dir).rglob('*')
                   if p.suffix.lower() in ('.png', '.jpg', '.jpeg'))[:limit]
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
            try:
                export_onnx(model, card, out, args.opset)
            except ExportError as exc:
                raise _Fail(str(exc)) from None
        else:
            from seg_perception.model_io import export_saved_model
            export_saved_model(model, card, out)
        print(f'wrote {out}')
        if not args.no_check:
            result = compare(pathlib.Path(args.model), out, args.format, args.check_frames,
                             args.check_limit)
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
