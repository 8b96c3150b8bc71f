"""rclpy set-up shared by the node, ``seg_bag live`` and the tests: ``rclpy.init`` without
rclpy's signal handlers, the keep-last QoS profile, and spinning until SIGINT or SIGTERM.

rclpy's default handlers (installed by ``rclpy.init``) lost a SIGTERM now and then in this
project's tests, leaving the process spinning. Here Python handlers set a flag, and the
executor spins in short slices so the flag is seen within ``period`` seconds.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def init(args: Sequence[str] | None = None, context: Context | None = None) -> None:
    """``rclpy.init`` without rclpy's signal handlers (use :func:`spin_until_signal`).

    Args:
        args: command-line arguments (``--ros-args ...``), or None.
        context: the Context to initialise (None: rclpy's default context).
    """
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


def qos_profile(depth: int, reliability: str) -> QoSProfile:
    """Keep-last volatile QoS with the given depth and reliability name.

    Args:
        depth: history depth.
        reliability: ``'reliable'``; anything else (``'best_effort'``) is best effort.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      durability=DurabilityPolicy.VOLATILE,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                                   else ReliabilityPolicy.BEST_EFFORT))


def spin_until_signal(executor: Any, period: float = 0.1,
                      until: Callable[[], bool] | None = None) -> int:
    """Spin ``executor`` until SIGINT/SIGTERM, context shutdown or ``until()`` holds (checked
    after every slice); returns the signal (or 0).

    Must run in the main thread (Python delivers signals there).
    """
    received = threading.Event()
    which = {'signal': 0}

    def on_signal(signum: int, _frame: Any) -> None:
        which['signal'] = signum
        received.set()

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        while not received.is_set() and executor.context.ok():
            executor.spin_once(timeout_sec=period)
            if until is not None and until():
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return which['signal']
