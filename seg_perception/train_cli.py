r"""``seg_train``: train FCN-8s road segmentation on KITTI Road or CamVid.

Examples::

    seg_train --dataset kitti --data-dir ~/data/data_road --out runs/kitti \
        --no-batch-norm --head full --init imagenet --input-size 384 1248 --input-mode pad
    seg_train --dataset camvid --data-dir ../shared/data/camvid --out runs/camvid
    seg_train --config my.yaml --out runs/camvid --resume     # continue after a crash
"""
from __future__ import annotations

import argparse
import shlex
import sys

from seg_perception.cli_common import run_cli, setup_logging

PROG = 'seg_train'


def build_parser() -> argparse.ArgumentParser:
    """Flags; every flag left out keeps the YAML/default value."""
    from seg_perception.training.config import TrainConfig
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)
    p.add_argument('--config', help='YAML file of TrainConfig keys (flags override it)')
    p.add_argument('--dataset', choices=['kitti', 'camvid'], help=f'dataset (default {d.dataset})')
    p.add_argument('--data-dir', dest='data_dir',
                   help='dataset folder: KITTI data_road (with training/, testing/) or CamVid '
                        '(with train/, trainannot/, val/, valannot/)')
    p.add_argument('--out', help=f'run folder for checkpoints, logs and model (default {d.out})')
    p.add_argument('--resume', action='store_true', default=False,
                   help='continue the run in --out from its last completed epoch')
    p.add_argument('--train-split', dest='train_split', help='training split (default train)')
    p.add_argument('--val-split', dest='val_split',
                   help='validation split for best-model selection (default val; "" = none)')
    p.add_argument('--split-seed', dest='split_seed', type=int,
                   help='KITTI train/val split seed (default 0: 241/48 stratified)')
    g = p.add_argument_group('model')
    g.add_argument('--batch-norm', dest='batch_norm', action='store_true',
                   help='VGG16-BN encoder (default; trains from scratch)')
    g.add_argument('--no-batch-norm', dest='batch_norm', action='store_false',
                   help='plain VGG16 encoder (takes ImageNet weights)')
    g.add_argument('--head', choices=['light', 'full'],
                   help='fc6/fc7 head: light 3x3x512 (default) or full 7x7x4096 (paper)')
    g.add_argument('--dropout', type=float, help=f'dropout after fc6/fc7 (default {d.dropout})')
    g.add_argument('--pool-scaling', dest='pool_scaling', action='store_true',
                   help='scale pool4/pool3 by 0.01/0.0001 (FCN-8s at-once; ImageNet init)')
    g.add_argument('--init', help='none (default), imagenet (needs internet once), or a local '
                                  'VGG16 .h5 / .segmodel weights file')
    g = p.add_argument_group('data')
    g.add_argument('--input-size', dest='input_size', type=int, nargs=2, metavar=('H', 'W'),
                   help=f'crop/model size, multiples of 32 (default {d.input_size[0]} '
                        f'{d.input_size[1]})')
    g.add_argument('--input-mode', dest='input_mode', choices=['pad', 'resize'],
                   help='how the exported model is used at inference (default resize)')
    g.add_argument('--scale', dest='scale', type=float, nargs=2, metavar=('MIN', 'MAX'),
                   help='random scale range relative to fitting the crop height')
    g.add_argument('--no-flip', dest='flip', action='store_false', help='no horizontal flips')
    g.add_argument('--jitter', type=float, help='photometric jitter strength (0 = off)')
    g.add_argument('--cache', choices=['auto', 'yes', 'no'], help='keep decoded frames in RAM')
    g.add_argument('--pipeline', choices=['auto', 'tfdata', 'pydataset'],
                   help='input pipeline (auto: tf.data with TensorFlow, else PyDataset)')
    g = p.add_argument_group('optimisation')
    g.add_argument('--epochs', type=int, help=f'epochs (default {d.epochs})')
    g.add_argument('--batch-size', dest='batch_size', type=int,
                   help=f'batch size (default {d.batch_size})')
    g.add_argument('--steps-per-epoch', dest='steps_per_epoch', type=int,
                   help='batches per epoch (default: one pass over the data)')
    g.add_argument('--optimizer', choices=['adam', 'adamw'])
    g.add_argument('--lr', dest='learning_rate', type=float,
                   help=f'peak learning rate (default {d.learning_rate})')
    g.add_argument('--weight-decay', dest='weight_decay', type=float)
    g.add_argument('--class-weights', dest='class_weights', type=float, nargs='+')
    g.add_argument('--precision', choices=['auto', 'float32', 'bfloat16', 'float16'],
                   help='auto: mixed float16 on GPU, mixed bfloat16 on AMX CPUs, else float32')
    g.add_argument('--distribute', choices=['auto', 'none', 'mirrored'],
                   help='tf.distribute.MirroredStrategy over local GPUs (auto: if >1 GPU)')
    g.add_argument('--val-every', dest='val_every', type=int, help='validate every N epochs')
    g.add_argument('--early-stopping', dest='early_stopping', type=int,
                   help='patience in validations without MaxF gain (0 = off)')
    g.add_argument('--seed', type=int)
    g.add_argument('--weights-dtype', dest='weights_dtype', choices=['float16', 'float32'],
                   help='storage of the exported model (default float16)')
    p.add_argument('-v', '--verbose', action='store_true', default=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = vars(build_parser().parse_args(argv))
    setup_logging(args.pop('verbose'))

    def run() -> int:
        from seg_perception.datasets import DatasetError
        from seg_perception.model_io import ModelFileError
        from seg_perception.training.config import TrainConfig
        from seg_perception.training.trainer import TrainError, train
        try:
            resume = args.pop('resume')
            config = TrainConfig()
            if 'config' in args:
                config = TrainConfig.from_yaml(args.pop('config'))
            if 'scale' in args:
                args['scale_min'], args['scale_max'] = args.pop('scale')
            config = config.updated(args)
            config.validate()
            train(config, resume=resume, command=shlex.join([PROG, *argv]))
        except (ValueError, DatasetError, ModelFileError, TrainError, OSError) as exc:
            raise _Fail(str(exc)) from None
        return 0
    return run_cli(PROG, run, (_Fail,))


class _Fail(Exception):
    pass


if __name__ == '__main__':
    sys.exit(main())



