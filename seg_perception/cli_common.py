"""Shared plumbing of the command-line tools: logging setup and one-line error exits."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``LEVEL message``; quiet TensorFlow's C++ logs."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s', stream=sys.stderr)


def run_cli(prog: str, main: Callable[[], int], expected: tuple[type[BaseException], ...],
            ) -> int:
    """Run ``main``; expected errors and Ctrl-C become one readable line and exit 1/130."""
    try:
        return main()
    except expected as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
