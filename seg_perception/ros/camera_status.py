"""Diagnostics bookkeeping of the node: one status per camera from its counters, no ROS.

Per camera (``<node>: <camera>``): input/output rate (Hz), inference_ms (the batched
segment call), batch_frames, crf_ms, frame_path_ms (per frame, the work outside the model's
forward pass and CRF: decode, preprocess, transfers, post-processing, overlay, messages,
publishing), latency_ms / latency_max_ms (publish time minus header stamp), frames
received/processed/dropped/bad/lost (totals), CRF state, threshold, device, precision,
backend. ``frames_lost`` counts frames the middleware reported lost in transport
(``message_lost`` events); those never reach the node, so they are not in
``frames_received``. The node turns each :class:`CameraReport` into a
``diagnostic_msgs/DiagnosticStatus``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from seg_perception.core.params import Runtime, Settings
from seg_perception.ros.worker import Camera

OK, WARN = 0, 1  # diagnostic_msgs/DiagnosticStatus levels


@dataclasses.dataclass(frozen=True)
class CameraReport:
    """One camera's status: ``level`` (:data:`OK` / :data:`WARN`), a short message and the
    key/value strings.
    """

    level: int
    message: str
    values: dict[str, str]


def mean_text(values: Sequence[float], fmt: str) -> str:
    """Mean of ``values`` formatted with ``fmt``, or 'nan' when empty."""
    return format(sum(values) / len(values), fmt) if values else 'nan'


def camera_report(cam: Camera, dt: float, rt: Runtime, segmenter: Any) -> CameraReport:
    """The report of ``cam`` over the last ``dt`` seconds; resets its samples.

    The caller holds the worker's lock (consistent counters).
    """
    st = cam.stats
    lat, inf, batch, crf_t, path = (st.latency_ms, st.inference_ms, st.batch_frames,
                                    st.crf_ms, st.path_ms)
    st.latency_ms, st.inference_ms, st.batch_frames, st.crf_ms, st.path_ms = [], [], [], [], []
    rate_in = (st.received - st.last_received) / dt
    rate_out = (st.processed - st.last_processed) / dt
    new_bad, new_lost = st.bad - st.last_bad, st.lost - st.last_lost
    st.last_received, st.last_processed, st.last_bad, st.last_lost = (
        st.received, st.processed, st.bad, st.lost)
    level, text = OK, 'ok'
    if rate_in == 0:
        level, text = WARN, 'no input frames'
    elif new_bad:
        level, text = WARN, f'{new_bad} bad frames'
    elif new_lost:
        level, text = WARN, f'{new_lost} frames lost in transport'
    values = {
        'input_topic': cam.input_topic,
        'input_rate_hz': f'{rate_in:.2f}', 'output_rate_hz': f'{rate_out:.2f}',
        'inference_ms': mean_text(inf, '.1f'),
        'batch_frames': mean_text(batch, '.2f'),
        'crf_ms': mean_text(crf_t, '.1f'),
        'frame_path_ms': mean_text(path, '.2f'),
        'latency_ms': mean_text(lat, '.1f'),
        'latency_max_ms': f'{max(lat):.1f}' if lat else 'nan',
        'frames_received': str(st.received), 'frames_processed': str(st.processed),
        'frames_dropped': str(st.dropped), 'frames_bad': str(st.bad),
        'frames_lost': str(st.lost) if cam.lost_supported else 'n/a',
        'crf': f'on ({rt.crf_iterations} iterations)' if rt.crf_enabled else 'off',
        'threshold': f'{rt.threshold:g}', 'device': segmenter.device,
        'precision': segmenter.precision, 'backend': segmenter.backend,
    }
    return CameraReport(level, text, values)


def record_batch(cams: Sequence[Camera], infer_ms: float, path_ms: float,
                 crf_ms: float | None, latencies: Sequence[float | None]) -> None:
    """Count a processed batch for each of ``cams`` (caller holds the worker's lock)."""
    for cam, latency in zip(cams, latencies):
        st = cam.stats
        st.processed += 1
        st.inference_ms.append(infer_ms)
        st.path_ms.append(path_ms)
        if crf_ms is not None:
            st.crf_ms.append(crf_ms)
        st.batch_frames.append(len(cams))
        if latency is not None:
            st.latency_ms.append(latency)


class Throttle:
    """At most one warning per key every ``period_s`` seconds, counting the suppressed."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._state: dict[Any, list[float]] = {}

    def suffix(self, key: Any, now: float) -> str | None:
        """``None`` while ``key`` is throttled, else the text to append to the warning
        ('' or ' (N more since the last warning)').
        """
        last, suppressed = self._state.get(key, [-math.inf, 0])
        if now - last < self.period_s:
            self._state[key] = [last, suppressed + 1]
            return None
        self._state[key] = [now, 0]
        return f' ({int(suppressed)} more since the last warning)' if suppressed else ''


def grid_report(cameras: Sequence[Camera]) -> CameraReport:
    """The ``grid`` status: each camera's grid state and mean grid time (ms) since the last
    report; WARN while a camera has no grid. Resets the time samples; the caller holds the
    worker's lock.
    """
    values, missing = {}, []
    for cam in cameras:
        st = cam.stats
        state = st.grid_state or 'no frame yet'
        values[f'{cam.label}'] = state
        values[f'{cam.label}_grid_ms'] = mean_text(st.grid_ms, '.2f')
        st.grid_ms = []
        if state != 'ok':
            missing.append(cam.label)
    if missing:
        return CameraReport(WARN, 'no grid for ' + ', '.join(missing), values)
    return CameraReport(OK, 'ok', values)


def configuration_text(s: Settings, seg: Any, rt: Runtime, inputs: Sequence[str]) -> str:
    """The node's one-line ``configured: ...`` log of the settings in effect."""
    runtime = (f'backend=onnxruntime providers={",".join(seg.providers)} (requested '
               f'{",".join(s.providers)}, unavailable ones skipped)'
               if s.backend == 'onnxruntime' else 'backend=keras')
    if s.backend_note:
        runtime += f' [{s.backend_note}]'
    crf = f'on ({rt.crf_iterations} it, scale {s.crf["scale"]})' if rt.crf_enabled else 'off'
    return (f'configured: model={s.model_path} {runtime} device={seg.device} precision='
            f'{seg.precision} input_mode={seg.input_mode} input_size='
            f'{"x".join(str(v) for v in seg.input_size)} threshold={rt.threshold:g} '
            f'crf={crf} overlay=({s.overlay_encoding}, alpha {s.overlay_alpha:g}) '
            f'probability={"on" if s.publish_probability else "off"} transport={s.transport} '
            f'inputs=[{", ".join(inputs)}] qos_in={s.qos_input[1]}/{s.qos_input[0]} '
            f'qos_out={s.qos_output[1]}/{s.qos_output[0]}')
