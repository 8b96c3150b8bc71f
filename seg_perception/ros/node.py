"""ROS 2 node ``road_segmentation``: the ROS interfaces and callbacks over the pure core.

A managed (lifecycle) node: ``configure`` validates the parameters
(:mod:`seg_perception.core.params`), builds the :class:`~seg_perception.runtime.pipeline.Pipeline`
and the lifecycle publishers; ``activate`` subscribes; ``deactivate`` unsubscribes (a waiting
frame counts as dropped, the batch in progress is finished); ``cleanup`` frees the model;
``shutdown`` ends the process (exit 0). With ``autostart`` (default) it configures and
activates itself; a start it cannot make logs one ``cannot start: <reason>`` line.

Callbacks only store the newest frame per camera (:mod:`.worker`); the worker thread runs one
batched pipeline call for all cameras (:mod:`.frame_processing`). Topics: README.md.
"""
from __future__ import annotations

import functools
import gc
import sys
import time
from collections.abc import Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seg_perception.core import params
from seg_perception.core.formats import NODE_NAME, START_FAILURE
from seg_perception.core.params import ConfigError, Runtime
from seg_perception.ros import camera_status as diagnostics
from seg_perception.ros import parameters as ros_params
from seg_perception.ros import spin as ros_spin
from seg_perception.ros.dds_env import use_async_publication, use_large_image_profile
from seg_perception.ros.frame_processing import LOG_THROTTLE_S, FrameProcessing
from seg_perception.ros.grid_output import grid_outputs
from seg_perception.ros.outputs import CameraOutputs, DiagnosticArray
from seg_perception.ros.worker import Camera, FrameWorker
from seg_perception.runtime import pipeline
from seg_perception.runtime.pipeline import require_crf

DEACTIVATE_WAIT_S = 30.0  # longest wait for the batch in progress when deactivating


class RoadSegmentationNode(FrameProcessing, LifecycleNode):
    """The ``road_segmentation`` lifecycle node (see the module docstring).

    Raises:
        ConfigError: a parameter override cannot be declared (already logged).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.cameras: list[Camera] = []
        self.pipeline: Any = None
        self.settings: params.Settings | None = None
        self._runtime: Runtime | None = None  # set while configured
        self._worker: FrameWorker | None = None
        self._throttle = diagnostics.Throttle(LOG_THROTTLE_S)
        self._threshold_from_card = False  # threshold was unset: re-read from each model
        self._inputs: list[Any] = []  # subscriptions (exist while active)
        self._publishers_: list[Any] = []  # lifecycle publishers (exist while configured)
        self._diag_timer = self._pub_diag = self._grid = None  # grid: GridOutputs (grid.enabled)
        try:
            ros_params.declare_all(self)
        except ConfigError as exc:
            self.get_logger().error(f'{START_FAILURE}{exc}')
            self.destroy_node()
            raise
        self.autostart = bool(self._value('autostart'))
        overrides = getattr(self, '_parameter_overrides', {})  # from files and -p
        unknown = sorted(name for name in overrides if not self.has_parameter(name))
        if unknown:
            self.get_logger().warning(f'ignoring unknown parameters (typo?): {unknown}')
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def state_label(self) -> str:
        """The current lifecycle state: unconfigured, inactive, active or finalized."""
        return str(self._state_machine.current_state[1])

    # -- lifecycle transitions -----------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, build and warm up the pipeline, create the publishers."""
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - report, stay unconfigured
            reason = str(exc) if isinstance(exc, ConfigError) else f'configure failed: {exc!r}'
            self.get_logger().error(f'{START_FAILURE}{reason}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, subscribe to the inputs, start the diagnostics timer."""
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        try:
            self._create_inputs()
        except Exception as exc:  # noqa: BLE001 - report, back to inactive
            self.get_logger().error(f'activate failed: {exc!r}')
            self._destroy_inputs()
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info('active: inputs ' + ', '.join(c.input_topic for c in self.cameras))
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, drop (and count) waiting frames, finish the batch, disable publishing."""
        self._destroy_inputs()
        super().on_deactivate(state)
        self.get_logger().info('inactive: inputs unsubscribed')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker, destroy the publishers, free the model."""
        self._teardown()
        self.get_logger().info('unconfigured: model freed')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any primary state: release everything (the process then exits 0)."""
        self._destroy_inputs()
        self._teardown()
        self.get_logger().info(f'finalized (from {state.label})')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and go back to unconfigured."""
        self._destroy_inputs()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def finish(self) -> None:
        """Take the node to finalized (shutdown transition) unless it is there already."""
        if self.state_label not in ('finalized', 'unknown'):
            self.trigger_shutdown()

    # -- configuration -------------------------------------------------------------------
    def _value(self, name: str) -> Any:
        return ros_params.value(self, name)

    def _configure(self) -> None:
        values = {spec.name: self._value(spec.name) for spec in params.PARAMETERS}
        if self._threshold_from_card:
            values['threshold'] = None  # it was the previous model's recommendation
        s = self.settings = params.settings_from_values(values)
        self.pipeline = pipeline.Pipeline.from_settings(s)
        if s.threshold is None:  # publish the effective value
            self.set_parameters([Parameter('threshold', value=self.pipeline.threshold)])
            self._threshold_from_card = True
        self._runtime = Runtime(self.pipeline.threshold, s.crf_enabled, s.crf['iterations'],
                                s.overlay_alpha)  # from_settings checked the CRF when on
        t0 = time.perf_counter()
        self.pipeline.warmup(max(1, len(s.cameras)))
        self.get_logger().info(f'warm-up done in {time.perf_counter() - t0:.1f} s')
        self._create_outputs()
        self._worker = FrameWorker(self.cameras, self._process, self._on_worker_error)
        self._worker.start()
        self.get_logger().info(diagnostics.configuration_text(
            s, self.pipeline.segmenter, self._runtime, [c.input_topic for c in self.cameras]))

    def _input_topic(self, cam: Camera) -> str:
        assert self.settings is not None
        return cam.prefix + ('image/compressed' if self.settings.transport == 'compressed'
                             else 'image')

    def _create_outputs(self) -> None:
        """Cameras and their outputs (lifecycle publishers: publishing only while active)."""
        s = self.settings
        assert s is not None
        qout = ros_spin.qos_profile(*s.qos_output)
        create = functools.partial(self._lifecycle_publisher, qos=qout)
        self.cameras = []
        for name in (s.cameras or ('',)):
            cam = Camera(name)
            cam.outputs = CameraOutputs(create, cam.prefix, s.overlay_encoding,
                                        s.publish_probability)
            cam.input_topic = self.resolve_topic_name(self._input_topic(cam))
            self.cameras.append(cam)
        self._grid = grid_outputs(self, s.grid, self.cameras, create)
        self._pub_diag = self._lifecycle_publisher(DiagnosticArray, '/diagnostics', 10)

    def _lifecycle_publisher(self, msg_type: Any, topic: str, qos: Any) -> Any:
        pub = self.create_lifecycle_publisher(msg_type, topic, qos)
        self._publishers_.append(pub)
        return pub

    def _create_inputs(self) -> None:
        """Subscriptions (image with message_lost counting, camera_info), diagnostics timer."""
        s = self.settings
        assert s is not None and self._worker is not None
        qin = ros_spin.qos_profile(*s.qos_input)
        msg_type = CompressedImage if s.transport == 'compressed' else Image
        for cam in self.cameras:
            callback = functools.partial(self._worker.offer, cam)
            events = SubscriptionEventCallbacks(
                message_lost=functools.partial(self._on_message_lost, cam))
            try:
                sub = self.create_subscription(msg_type, self._input_topic(cam), callback, qin,
                                               event_callbacks=events)
            except UnsupportedEventTypeError:
                cam.lost_supported = False
                sub = self.create_subscription(msg_type, self._input_topic(cam), callback, qin)
            self._inputs.append(sub)
            self._inputs.append(self.create_subscription(
                CameraInfo, cam.prefix + 'camera_info',
                functools.partial(setattr, cam, 'camera_info'), qin))
        self._diag_last = time.monotonic()
        self._diag_timer = self.create_timer(s.diagnostics_period, self._publish_diagnostics)

    def _destroy_inputs(self) -> None:
        """Unsubscribe; count waiting frames as dropped; wait for the batch in progress."""
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._worker is not None:
            self._worker.drop_pending(DEACTIVATE_WAIT_S)

    def _teardown(self) -> None:
        """Stop the worker, destroy the publishers, free the model (idempotent)."""
        if self._worker is not None:
            self._worker.stop(DEACTIVATE_WAIT_S)
            self._worker = None
        for pub in self._publishers_:
            self.destroy_lifecycle_publisher(pub)
        self._publishers_ = []
        self._pub_diag = self._grid = None
        self.cameras = []
        self.pipeline = None
        self._runtime = None
        gc.collect()

    # -- callbacks -----------------------------------------------------------------------
    def _on_set_parameters(self, changed: Sequence[Parameter]) -> SetParametersResult:
        """Run-time changes (rclpy already applied the ranges and read-only flags) take
        effect on the next batch; before configure they are read at configure.
        """
        rt = self._runtime
        new = {p.name: p.value for p in changed}
        if new.get('crf.enabled') and rt is not None:
            try:
                require_crf()
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if rt is None:
            return SetParametersResult(successful=True)
        self._runtime = Runtime(
            threshold=float(new.get('threshold', rt.threshold)),
            crf_enabled=bool(new.get('crf.enabled', rt.crf_enabled)),
            crf_iterations=int(new.get('crf.iterations', rt.crf_iterations)),
            overlay_alpha=float(new.get('overlay.alpha', rt.overlay_alpha)))
        changes = {k: v for k, v in new.items() if k in params.RUNTIME_PARAMETERS}
        if changes:
            self.get_logger().info('parameters changed: ' + ', '.join(
                f'{k}={v}' for k, v in changes.items()))
        return SetParametersResult(successful=True)

def main(args: Sequence[str] | None = None) -> int:
    """Run the node until Ctrl-C / SIGTERM or its shutdown transition (exit 0); exit 1 when it
    cannot be constructed or, with autostart, configured and activated.
    """
    use_large_image_profile()  # its own large overlays over shared memory (before init)
    use_async_publication()
    ros_spin.init(args)
    node = None
    try:
        node = RoadSegmentationNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.autostart:
            for step in (node.trigger_configure, node.trigger_activate):
                if step() != TransitionCallbackReturn.SUCCESS:
                    return 1  # the reason is logged
        else:
            node.get_logger().info('unconfigured (autostart is false): waiting for lifecycle '
                                   'transitions')
        ros_spin.spin_until_signal(executor, until=lambda: node.state_label == 'finalized')
    except ConfigError:
        return 1  # already logged by the node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                node.finish()
            finally:
                node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
