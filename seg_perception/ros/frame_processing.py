"""The worker thread's side of the ``road_segmentation`` node: one batch of frames decoded,
checked, segmented and published; bad and lost frames counted; ``/diagnostics`` published.

:class:`FrameProcessing` is a mixin of :class:`~seg_perception.ros.node.RoadSegmentationNode`
(an rclpy node): it uses the node's ``pipeline``, ``_runtime``, ``_worker``, ``cameras``,
``_pub_diag``, ``_diag_last`` and ``_throttle``, which the node sets at configure/activate.
"""
from __future__ import annotations

import time
from typing import Any

from seg_perception.core import image_msgs, preprocess
from seg_perception.ros import camera_status as diagnostics
from seg_perception.ros.outputs import diagnostic_array
from seg_perception.ros.worker import Camera

LOG_THROTTLE_S = 5.0  # per (camera, problem) warning period


class FrameProcessing:
    """Worker-thread callbacks of the node (see the module docstring)."""

    def _on_message_lost(self, cam: Camera, info: Any) -> None:
        if self._worker is not None:
            with self._worker.lock:
                cam.stats.lost += int(info.total_count_change)

    def _on_worker_error(self, batch: list[tuple[Camera, Any]], exc: Exception) -> None:
        if self.context.ok():  # else shutting down: the publishers are gone
            for cam, _ in batch:
                self._bad_frame(cam, 'internal', f'processing failed: {exc!r}')

    def _process(self, batch: list[tuple[Camera, Any]]) -> None:
        """Decode and check each frame once, run the pipeline on the batch, publish."""
        t_start = time.perf_counter()
        frames = []
        for cam, msg in batch:
            try:
                image, bgr = image_msgs.decode_frame(msg)  # a view where possible
                preprocess.check_frame(image)
            except image_msgs.ImageDecodeError as exc:
                self._bad_frame(cam, exc.reason, str(exc))
                continue
            except preprocess.InputError as exc:
                self._bad_frame(cam, 'size', str(exc))
                continue
            frames.append((cam, msg.header, image, bgr))
        rt, pipe = self._runtime, self.pipeline
        if not frames or rt is None or pipe is None:
            return
        results = pipe.run([f[2] for f in frames], bgr=[f[3] for f in frames],
                           threshold=rt.threshold, crf=rt.crf_enabled,
                           crf_iterations=rt.crf_iterations, validated=True)
        for (cam, header, image, bgr), res in zip(frames, results):
            cam.outputs.publish(header, image, bgr, res.labels, res.probability, pipe,
                                rt.overlay_alpha, cam.camera_info)
        # The per-frame path outside the model: everything but the forward pass and CRF.
        path_ms = ((time.perf_counter() - t_start) * 1e3 - pipe.last_crf_ms
                   - pipe.last_forward_ms) / len(frames)
        latencies = [self._latency_ms(f[1]) for f in frames]
        grid = self._grid.publish([(f[0], f[1], r.probability) for f, r in zip(frames, results)]
                                  ) if self._grid is not None else []
        with self._worker.lock:
            diagnostics.record_batch([f[0] for f in frames], pipe.last_segment_ms, path_ms,
                                     pipe.last_crf_ms if rt.crf_enabled else None, latencies)
            for cam, state, ms in grid:
                cam.stats.grid_ms.append(ms)
                cam.stats.grid_state = state
        for cam, state, _ in grid:
            if state != 'ok':
                self._warn(cam, 'grid', f'no grid: {state}')

    def _latency_ms(self, header: Any) -> float | None:
        stamp = header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            return None
        now = self.get_clock().now().nanoseconds
        return (now - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e6

    def _bad_frame(self, cam: Camera, reason: str, message: str) -> None:
        if self._worker is not None:
            with self._worker.lock:
                cam.stats.bad += 1
        self._warn(cam, reason, f'skipped bad frame: {message}')

    def _warn(self, cam: Camera, reason: str, message: str) -> None:
        """A warning about ``cam``, at most once per (camera, reason) and throttle period."""
        extra = self._throttle.suffix((cam.name, reason), time.monotonic())
        if extra is not None:
            self.get_logger().warning(f'{cam.label}: {message}{extra}')

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        dt, self._diag_last = max(now - self._diag_last, 1e-6), now
        rt, pipe, worker = self._runtime, self.pipeline, self._worker
        if rt is None or pipe is None or self._pub_diag is None or worker is None:
            return
        reports = []
        for cam in self.cameras:
            with worker.lock:
                report = diagnostics.camera_report(cam, dt, rt, pipe.segmenter)
            reports.append((f'{self.get_fully_qualified_name()}: {cam.label}', cam.label,
                            report))
        if self._grid is not None:
            with worker.lock:
                reports.append((f'{self.get_fully_qualified_name()}: grid', 'grid',
                                diagnostics.grid_report(self.cameras)))
        self._pub_diag.publish(diagnostic_array(
            reports, self.get_clock().now().to_msg()))
