r"""``seg_train``: train FCN-8s road segmentation on KITTI Road, Cityscapes and CamVid.

Examples::

    seg_train --config config/train_road.yaml --out runs/road          # the shipped recipe
    seg_train --source kitti:~/data/data_road:0.5 --source camvid:~/data/camvid:0.5 \
        --init hed --out runs/mix
    seg_train --source folder:~/data/mine --out runs/mine    # images/, masks/, classes.yaml
    seg_train --dataset kitti --data-dir ~/data/data_road --init imagenet --head full \
        --input-size 384 1248 --input-mode pad --out runs/kitti
    seg_train --config my.yaml --out runs/road --resume     # continue after a crash
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from seg_perception.cli.common import check_out_dir, run_cli, setup_logging
from seg_perception.core.formats import UsageError, check_model_file
from seg_perception.datasets import DatasetError, open_dataset
from seg_perception.training.config import (
    DATASETS,
    DataSource,
    TrainConfig,
    add_flags,
    from_flags,
    run_dir_problem,
)

PROG = 'seg_train'


def build_parser() -> argparse.ArgumentParser:
    """Flags derived from the TrainConfig fields; every flag left out keeps the YAML/default."""
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)
    p.add_argument('--config', help='YAML file of TrainConfig keys (flags override it)')
    p.add_argument('--out', help='run folder for checkpoints, logs and model')
    p.add_argument('--resume', action='store_true', default=False,
                   help='continue the run in --out from its last completed epoch')
    p.add_argument('--dataset', choices=DATASETS,
                   help='single-source shorthand: with --data-dir, the same as --source '
                        'DATASET:DIR')
    p.add_argument('--data-dir', dest='data_dir', help='folder of --dataset')
    add_flags(p)
    p.add_argument('-v', '--verbose', action='store_true', default=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = vars(build_parser().parse_args(argv))
    setup_logging(args.pop('verbose'))

    def run() -> int:
        try:
            resume = args.pop('resume')
            config = TrainConfig()
            if 'config' in args:
                config = TrainConfig.from_yaml(args.pop('config'))
            dataset, data_dir = args.pop('dataset', None), args.pop('data_dir', None)
            if dataset or data_dir:
                if not (dataset and data_dir):
                    raise ValueError('--dataset and --data-dir go together')
                args.setdefault('data.sources', []).append(DataSource(dataset, data_dir))
            config = from_flags(args, config)
            config.validate()
            check_start(config, resume)
        except (ValueError, DatasetError, OSError) as exc:
            raise UsageError(' '.join(str(exc).split())) from None
        # TensorFlow only now: the configuration, the data and --out are fine.
        from seg_perception.model.model_file import ModelFileError
        from seg_perception.training.trainer import TrainError, train
        try:
            train(config, resume=resume, command=shlex.join([PROG, *argv]))
        except (ValueError, DatasetError, ModelFileError, TrainError, OSError) as exc:
            raise UsageError(' '.join(str(exc).split())) from None
        return 0
    return run_cli(PROG, run, ())


def check_start(config: Any, resume: bool) -> None:
    """What the trainer would refuse, checked before TensorFlow is imported and before the
    run folder is created: --out, --resume, an --init model file, and every source split
    (opened as the trainer opens them; listing files only).

    Raises:
        UsageError, ValueError, DatasetError: the first problem, as one line.
    """
    if not config.out:
        raise UsageError('--out is required (the run folder)')
    out = check_out_dir(config.out)
    problem = run_dir_problem(out, resume)
    if problem:
        raise UsageError(problem)
    init = str(config.model.init)
    if init.endswith('.segmodel'):
        check_model_file(init, '--init')
    for source in config.data.sources:
        for split in (source.train_split, source.val_split):
            if split:
                kwargs = {**({'seed': config.data.split_seed}
                             if source.dataset == 'kitti' else {}), **source.options}
                open_dataset(source.dataset, source.data_dir, split, **kwargs)




if __name__ == '__main__':
    sys.exit(main())



