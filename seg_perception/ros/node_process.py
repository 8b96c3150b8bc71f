"""A ROS 2 node (or any command) as a subprocess, for ``make demo`` and the integration tests.

:class:`NodeProcess` starts a command with ``--ros-args`` (built by :func:`ros_arguments`:
params files, ``-p`` overrides, remaps, namespace), sends its stdout and stderr to a log
file, and stops it with SIGINT or SIGTERM. Starting and stopping need no rclpy; waiting
until the process serves (:meth:`NodeProcess.wait_ready`) uses the caller's view of the ROS
graph (the tests' ``RosTestNode``).
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class NodeProcessError(RuntimeError):
    """A node process misbehaved (ignored its stop signal, or did not exit); the message
    includes the end of its log.
    """


def format_param(value: Any) -> str:
    """A parameter value as ``-p name:=VALUE`` text (YAML, strings single-quoted)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(format_param(v) for v in value) + ']'
    text = str(value).replace("'", "''")
    return f"'{text}'"


def ros_arguments(params_files: Iterable[str | os.PathLike] = (),
                  params: Mapping[str, Any] | None = None,
                  remaps: Iterable[tuple[str, str]] = (), namespace: str | None = None,
                  log_level: str | None = None) -> list[str]:
    """``--ros-args`` command-line arguments (the same ones launch_ros would pass).

    Order: params files first, then ``-p`` overrides (they win), remaps, namespace.
    """
    args = ['--ros-args']
    for path in params_files:
        args += ['--params-file', str(path)]
    for name, value in (params or {}).items():
        args += ['-p', f'{name}:={format_param(value)}']
    for src, dst in remaps:
        args += ['-r', f'{src}:={dst}']
    if namespace:
        args += ['-r', f'__ns:={namespace}']
    if log_level:
        args += ['--log-level', log_level]
    return args


class NodeProcess:
    """A ROS 2 node running as a subprocess; its stdout+stderr go to a log file.

    Args:
        command: program and its arguments (before ``--ros-args``).
        ros_args: from :func:`ros_arguments`.
        name: for messages (and the name of a temporary log file).
        env: extra environment variables.
        log_path: the log file to write (default: a new temporary file).
        cwd: working directory of the process (default: this one's).
    """

    def __init__(self, command: Sequence[str], ros_args: Sequence[str] = (), name: str = 'node',
                 env: Mapping[str, str] | None = None, log_path: pathlib.Path | None = None,
                 cwd: str | os.PathLike | None = None) -> None:
        """Start the process (a node is ready once its topics are discoverable)."""
        self.name = name
        self.command = [*command, *ros_args]
        if log_path is None:
            self._log = tempfile.NamedTemporaryFile(prefix=f'{name}_', suffix='.log',
                                                    delete=False)
            self.log_path = pathlib.Path(self._log.name)
        else:
            self.log_path = pathlib.Path(log_path)
            self._log = self.log_path.open('wb')
        full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=full_env,
                                        cwd=None if cwd is None else str(cwd))
        self.pid = self.process.pid

    def poll(self) -> int | None:
        """Exit code, or None while running."""
        return self.process.poll()

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors='replace')

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the log, framed for error messages."""
        text = self.log()
        return f'--- {self.name} log ({self.log_path}) ---\n{text[-chars:]}\n--- end ---'

    def wait_ready(self, graph: Any, publishers: Sequence[str] = (),
                   subscribers: Sequence[str] = (), timeout: float = 120.0) -> None:
        """Until the process's topics are discoverable (it is serving).

        Args:
            graph: has ``wait_for_publishers(topic, count, timeout, process)`` and
                ``wait_for_subscribers(...)`` (the tests' ``RosTestNode``), which raise
                when the time is up or this process exits.
            publishers: topics the process publishes.
            subscribers: topics the process subscribes to.
            timeout: seconds for all of them together.
        """
        deadline = time.monotonic() + timeout
        for topic in publishers:
            graph.wait_for_publishers(topic, 1, max(deadline - time.monotonic(), 0.1), self)
        for topic in subscribers:
            graph.wait_for_subscribers(topic, 1, max(deadline - time.monotonic(), 0.1), self)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; return its exit code.

        Raises:
            NodeProcessError: still running after ``timeout`` seconds.
        """
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NodeProcessError(f'{self.name} still running after {timeout} s\n'
                                   f'{self.log_tail()}') from None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0, *,
             raise_on_kill: bool = True) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL after ``timeout``).

        Raises:
            NodeProcessError: the process had to be killed (unless ``raise_on_kill`` is
                false: then its exit code, -9, is returned).
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                if raise_on_kill:
                    self._log.close()
                    raise NodeProcessError(
                        f'{self.name} ignored {signal.Signals(sig).name} for {timeout} s and '
                        f'was killed\n{self.log_tail()}') from None
        self._log.close()
        return self.process.returncode

    def stop_and_check(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop with ``sig``; raise :class:`NodeProcessError` unless the exit code is 0 and
        the log has no Python traceback.
        """
        rc = self.stop(sig, timeout)
        text = self.log()
        if rc != 0 or 'Traceback (most recent call last)' in text:
            raise NodeProcessError(f'{self.name} exited with {rc} after '
                                   f'{signal.Signals(sig).name}\n{self.log_tail()}')

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process.poll() is None:
            self.stop(signal.SIGINT)
