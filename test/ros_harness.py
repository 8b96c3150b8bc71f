"""Test harness for real ROS 2 integration tests: node subprocesses and waiting helpers.

* :class:`RosTestNode`: a test-side rclpy node in its own ``Context`` with an executor and
  helpers that wait for discovery and messages by spinning with a deadline (never by
  sleeping).
* :class:`NodeProcess` (from :mod:`seg_perception.ros.node_process`, re-exported with
  :func:`ros_arguments` and :func:`format_param`): starts an executable of this package (or
  any command) as a subprocess with ``--ros-args`` (params file, ``-p`` overrides, remaps,
  namespace), waits until it is ready (its topics are discoverable), and stops it with
  SIGINT/SIGTERM, checking the exit code and dumping its log on failure.

DDS isolation comes from ``conftest.pytest_configure`` (random ``ROS_DOMAIN_ID``,
localhost-only discovery), inherited by every subprocess.
"""
from __future__ import annotations

import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from seg_perception.ros import spin as ros_spin
from seg_perception.ros.node_process import (  # noqa: F401 - re-exported for the tests
    NodeProcess,
    NodeProcessError,
    format_param,
    ros_arguments,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
RELIABLE = ros_spin.qos_profile(10, 'reliable')
SENSOR = ros_spin.qos_profile(1, 'best_effort')
# Lifecycle primary states (the others are transitions in progress).
STABLE_STATES = frozenset({'unconfigured', 'inactive', 'active', 'finalized'})


class HarnessError(AssertionError):
    """A harness wait timed out or a node process misbehaved (message includes its log)."""


# -- test-side rclpy node ----------------------------------------------------------------
def make_context(ros_args: Sequence[str] = ()) -> Context:
    """Initialise a dedicated rclpy Context (no signal handlers: pytest keeps Ctrl-C).

    ``ros_args`` (e.g. ``['--params-file', path]``) are passed after ``--ros-args``.
    """
    context = Context()
    ros_spin.init(['--ros-args', *ros_args] if ros_args else None, context)
    return context


class Collector:
    """Messages received on one topic (in arrival order, with receive times)."""

    def __init__(self, owner: 'RosTestNode', topic: str, msg_type: Any, qos: QoSProfile) -> None:
        self.topic = topic
        self.messages: list[Any] = []
        self.times: list[float] = []
        self._owner = owner
        self.subscription = owner.node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg: Any) -> None:
        self.messages.append(msg)
        self.times.append(time.monotonic())

    def close(self) -> None:
        """Unsubscribe (stops receiving; keeps what was received)."""
        self._owner.node.destroy_subscription(self.subscription)

    def clear(self) -> None:
        """Forget the messages received so far."""
        self.messages.clear()
        self.times.clear()

    def wait_for(self, predicate: Callable[[Any], bool] = lambda m: True,
                 timeout: float = 10.0) -> Any:
        """Spin until a received message satisfies ``predicate``; return it."""
        found: list[Any] = []

        def check() -> bool:
            for msg in self.messages:
                if predicate(msg):
                    found.append(msg)
                    return True
            return False

        self._owner.spin_until(check, timeout, f'a matching message on {self.topic}')
        return found[0]

    def wait_count(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Spin until ``count`` messages arrived; return them."""
        self._owner.spin_until(lambda: len(self.messages) >= count, timeout,
                               f'{count} messages on {self.topic}')
        return self.messages[:count]


class RosTestNode:
    """A test-side node with its own executor; every wait spins it until a deadline."""

    def __init__(self, context: Context, name: str = 'test_harness') -> None:
        self.context = context
        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        """Destroy the node and the executor."""
        self.executor.remove_node(self.node)
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_once(self, timeout: float = 0.05) -> None:
        """Process at most one callback, waiting up to ``timeout`` seconds for one."""
        self.executor.spin_once(timeout_sec=timeout)

    def spin_until(self, condition: Callable[[], bool], timeout: float,
                   what: str = 'condition', process: 'NodeProcess | None' = None) -> None:
        """Spin until ``condition()`` holds; raise :class:`HarnessError` after ``timeout`` s.

        With ``process``, fail early (with its log) when that process exits.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if process is not None and process.poll() is not None:
                raise HarnessError(f'{process.name} exited with {process.poll()} while waiting '
                                   f'for {what}\n{process.log_tail()}')
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                extra = f'\n{process.log_tail()}' if process is not None else ''
                raise HarnessError(f'timed out after {timeout:.1f} s waiting for {what}{extra}')
            self.executor.spin_once(timeout_sec=min(0.05, remaining))

    def spin_for(self, duration: float) -> None:
        """Keep processing callbacks for ``duration`` seconds (to let traffic flow)."""
        deadline = time.monotonic() + duration
        while (remaining := deadline - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(0.05, remaining))

    def collect(self, topic: str, msg_type: Any, qos: QoSProfile = RELIABLE) -> Collector:
        """Subscribe to ``topic`` and keep every message."""
        return Collector(self, topic, msg_type, qos)

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        """Create a publisher on ``topic``."""
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 30.0,
                            process: 'NodeProcess | None' = None) -> None:
        """Spin until ``topic`` has at least ``count`` publishers (discovery)."""
        self.spin_until(lambda: self.node.count_publishers(topic) >= count, timeout,
                        f'{count} publisher(s) on {topic}', process)

    def wait_for_subscribers(self, topic: str, count: int = 1, timeout: float = 30.0,
                             process: 'NodeProcess | None' = None) -> None:
        """Spin until ``topic`` has at least ``count`` subscribers (discovery)."""
        self.spin_until(lambda: self.node.count_subscribers(topic) >= count, timeout,
                        f'{count} subscriber(s) on {topic}', process)

    def wait_matched(self, publisher: Any, count: int = 1, timeout: float = 30.0) -> None:
        """Spin until ``publisher`` is matched with ``count`` subscriptions."""
        self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout,
                        f'{count} subscription(s) matched on {publisher.topic_name}')

    def call(self, client: Any, request: Any, timeout: float = 10.0,
             resend: float | None = None) -> Any:
        """Call a service and spin until the response arrives; return it.

        A response can be lost while the server has not yet matched this client's response
        reader (the DDS service discovery race: Fast DDS waits 100 ms for the match, then
        drops the response; see ros2/rmw_fastrtps#418). With ``resend`` (seconds; only for
        idempotent services) the request is sent again until a response arrives or
        ``timeout`` runs out.
        """
        deadline = time.monotonic() + timeout
        self.spin_until(client.service_is_ready, timeout, f'service {client.srv_name}')
        while True:
            future = client.call_async(request)
            remaining = deadline - time.monotonic()
            window = remaining if resend is None else min(resend, remaining)
            try:
                self.spin_until(future.done, max(window, 0.0),
                                f'a response from {client.srv_name}')
                return future.result()
            except HarnessError:
                client.remove_pending_request(future)
                if resend is None or deadline - time.monotonic() <= 0:
                    raise HarnessError(f'timed out after {timeout:.1f} s waiting for a '
                                       f'response from {client.srv_name}') from None

    def set_parameters(self, node_name: str, values: Mapping[str, Any],
                       timeout: float = 10.0) -> list[Any]:
        """Set parameters of a remote node (``/ns/name``); return the SetParametersResults."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self._client(SetParameters, f'{node_name}/set_parameters')
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in values.items()])
        return list(self.call(client, req, timeout, resend=2.0).results)

    def get_parameters(self, node_name: str, names: Sequence[str],
                       timeout: float = 10.0) -> dict[str, Any]:
        """Values of parameters of a remote node (``/ns/name``)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self._client(GetParameters, f'{node_name}/get_parameters')
        values = self.call(client, GetParameters.Request(names=list(names)), timeout,
                           resend=2.0).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    def lifecycle_state(self, node_name: str, timeout: float = 10.0) -> str:
        """The lifecycle state label of a remote managed node (``/ns/name``)."""
        from lifecycle_msgs.srv import GetState

        client = self._client(GetState, f'{node_name}/get_state')
        return str(self.call(client, GetState.Request(), timeout,
                             resend=2.0).current_state.label)

    def change_state(self, node_name: str, transition: str, timeout: float = 60.0) -> bool:
        """Request a lifecycle transition by label (configure, activate, deactivate, cleanup,
        shutdown); return the service's ``success``."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        client = self._client(ChangeState, f'{node_name}/change_state')
        request = ChangeState.Request(transition=Transition(label=transition))
        before = self.lifecycle_state(node_name)
        deadline = time.monotonic() + timeout
        self.spin_until(client.service_is_ready, timeout, f'service {client.srv_name}')
        # ChangeState is not idempotent, so it is sent once. Should its response be lost to
        # the service discovery race (see call()), the node's state shows the outcome.
        future = client.call_async(request)
        while True:
            try:
                self.spin_until(future.done, max(min(2.0, deadline - time.monotonic()), 0.0),
                                f'a response from {client.srv_name}')
                return bool(future.result().success)
            except HarnessError:
                state = self.lifecycle_state(node_name)
                if state in STABLE_STATES and state != before:
                    client.remove_pending_request(future)
                    return True
                if deadline - time.monotonic() <= 0:
                    raise HarnessError(f'timed out after {timeout:.1f} s waiting for a '
                                       f'response from {client.srv_name} (node {state})'
                                       ) from None

    def _client(self, srv_type: Any, name: str) -> Any:
        clients = self.__dict__.setdefault('_clients', {})
        if name not in clients:
            clients[name] = self.node.create_client(srv_type, name)
        return clients[name]

    def request(self, publish: Callable[[], None], collector: Collector,
                predicate: Callable[[Any], bool], timeout: float = 30.0,
                retry: float = 2.0) -> Any:
        """Publish (again every ``retry`` s: first samples can race discovery) until a
        message satisfying ``predicate`` arrives on ``collector``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            publish()
            try:
                return collector.wait_for(predicate, min(retry, deadline - time.monotonic()))
            except HarnessError:
                if time.monotonic() >= deadline:
                    raise HarnessError(f'no matching reply on {collector.topic} within '
                                       f'{timeout:.1f} s') from None


# -- node subprocesses -------------------------------------------------------------------
def executable(name: str, module: str) -> list[str]:
    """Command for a console script of this package: ``<venv>/bin/<name>`` when installed
    beside the interpreter, else ``python -m <module>``."""
    script = pathlib.Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, '-m', module]


# -- launch files without launch -----------------------------------------------------------
def load_launch_module(name: str, folder: pathlib.Path | None = None) -> ModuleType:
    """Import ``launch/<name>`` (its top level needs no ``launch`` package).

    The source is compiled in memory: no ``launch/__pycache__`` is written into the tree.
    """
    path = (folder or REPO / 'launch') / name
    module = ModuleType(name.replace('.', '_'))
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and typing look modules up here
    try:
        exec(compile(path.read_text(), str(path), 'exec'), module.__dict__)  # noqa: S102
    finally:
        sys.modules.pop(module.__name__, None)
    return module


def share_config(name: str) -> pathlib.Path:
    """``<share>/config/<name>`` as FindPackageShare resolves it (else the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = pathlib.Path(get_package_share_directory('seg_perception')) / 'config' / name
        if path.is_file():
            return path
    except (ImportError, LookupError):
        pass
    return REPO / 'config' / name


def launch_command(launch_name: str, arguments: Mapping[str, str],
                   extra_params: Mapping[str, Any] | None = None,
                   ) -> tuple[list[str], list[str], dict[str, Any]]:
    """What ``ros2 launch seg_perception <launch_name> <arguments>`` starts, as a command.

    Uses the launch file's own ``node_arguments`` (the mapping its OpaqueFunction applies)
    and its argument defaults, so the parameters and remaps are exactly the launch file's.
    ``extra_params`` are appended as ``-p`` overrides (test-only settings).

    Returns:
        (executable command, ``--ros-args`` list, the launch file's node configuration).
    """
    module = load_launch_module(launch_name)
    values = {name: ('' if default is None else default)
              for name, default, _, _ in module.ARGUMENTS}
    values['params_file'] = str(share_config(module.PARAMS_FILE))
    unknown = set(arguments) - set(values)
    assert not unknown, f'{launch_name} has no launch arguments {sorted(unknown)}'
    values.update(arguments)
    cfg = module.node_arguments(values)
    args = ros_arguments(cfg['params_files'], {**cfg['parameters'], **(extra_params or {})},
                         [('__node', module.NODE_NAME), *cfg['remappings']],
                         cfg['namespace'], cfg['log_level'])
    return executable(module.EXECUTABLE, 'seg_perception.ros.node'), args, cfg
