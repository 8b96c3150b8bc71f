"""Shared plumbing of the command-line tools: logging setup, one-line error exits, and the
output-folder check every tool makes before importing TensorFlow (the model-file checks are
in :mod:`seg_perception.core.formats`): a bad flag, model file or output path fails in well
under a second, not after the 4-8 s TensorFlow import, and creates nothing.
"""
from __future__ import annotations

import logging
import os
import pathlib
import sys
from collections.abc import Callable

from seg_perception.core.formats import UsageError


def check_out_dir(path: str | os.PathLike, flag: str = '--out') -> pathlib.Path:
    """An output folder that exists or can be created (nothing is created here).

    Raises:
        UsageError: ``path`` is an existing file, or its nearest existing ancestor is not a
            writable folder.
    """
    p = pathlib.Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UsageError(f'{flag} {path} exists and is not a folder')
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f'{flag} {path}: {parent} is not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f'{flag} {path}: {parent} is not writable')
    return p


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``LEVEL message``; quiet TensorFlow's C++ logs."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s', stream=sys.stderr)


def run_cli(prog: str, main: Callable[[], int], expected: tuple[type[BaseException], ...],
            ) -> int:
    """Run ``main``; expected errors (and :class:`UsageError`) and Ctrl-C become one readable
    line and exit 1/130.
    """
    try:
        return main()
    except (*expected, UsageError) as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
