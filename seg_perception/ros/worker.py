"""Keep-latest frame slots per camera and the one worker thread that empties them.

Subscription callbacks only :meth:`FrameWorker.offer` the newest message of a camera: an
unprocessed older one is replaced and counted as dropped, so there is never a backlog. The
worker takes the newest frame of every camera at once and hands them to ``process`` as one
batch, so the latency stays within about one inference period. No ROS imports: the node
supplies the messages and the ``process`` callback.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class CameraStats:
    """Counters of one camera (totals) plus samples since the last diagnostics report
    (times in ms).
    """

    received: int = 0
    processed: int = 0
    dropped: int = 0
    bad: int = 0
    lost: int = 0
    latency_ms: list[float] = dataclasses.field(default_factory=list)
    inference_ms: list[float] = dataclasses.field(default_factory=list)
    batch_frames: list[int] = dataclasses.field(default_factory=list)
    crf_ms: list[float] = dataclasses.field(default_factory=list)
    path_ms: list[float] = dataclasses.field(default_factory=list)
    grid_ms: list[float] = dataclasses.field(default_factory=list)
    grid_state: str = ''  # 'ok' or why the camera has no grid; '' = no frame yet
    last_received: int = 0
    last_processed: int = 0
    last_bad: int = 0
    last_lost: int = 0


class Camera:
    """Input topic, keep-latest slot and statistics of one camera (``name`` '' = unnamed:
    topics without a prefix); ``outputs`` is the node's (its publishers).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = f'{name}/' if name else ''
        self.pending: Any = None  # the newest unprocessed message
        self.camera_info: Any = None  # the latest received CameraInfo (never modified)
        self.stats = CameraStats()
        self.input_topic = ''
        self.lost_supported = True  # the middleware reports message_lost
        self.outputs: Any = None

    @property
    def label(self) -> str:
        """Name in logs and diagnostics."""
        return self.name or 'image'


Batch = list[tuple[Camera, Any]]


class FrameWorker:
    """The keep-latest slots of ``cameras`` and the thread that processes them.

    Args:
        process: called on the worker thread with ``[(camera, message), ...]``.
        on_error: called with the batch and the exception when ``process`` raises (the
            worker keeps serving).

    Attributes:
        lock: guards the slots and every camera's :class:`CameraStats` (one lock, so
            diagnostics see consistent snapshots).
    """

    def __init__(self, cameras: list[Camera], process: Callable[[Batch], None],
                 on_error: Callable[[Batch, Exception], None]) -> None:
        self.cameras = cameras
        self._process, self._on_error = process, on_error
        self._cond = threading.Condition()
        self.lock = self._cond
        self._stop = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self, name: str = 'road_segmentation_worker') -> None:
        """Start the worker thread."""
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the thread after the batch in progress (waits up to ``timeout`` s)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop

    def offer(self, cam: Camera, msg: Any) -> None:
        """Store ``msg`` as ``cam``'s newest frame (an unprocessed older one is dropped)."""
        with self._cond:
            cam.stats.received += 1
            if cam.pending is not None:
                cam.stats.dropped += 1
            cam.pending = msg
            self._cond.notify()

    def drop_pending(self, timeout: float) -> None:
        """Count waiting frames as dropped and wait up to ``timeout`` s for the batch in
        progress (deactivation).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            for cam in self.cameras:
                if cam.pending is not None:
                    cam.stats.dropped += 1
                    cam.pending = None
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not any(c.pending for c in self.cameras):
                    self._cond.wait()
                if self._stop:
                    return
                batch = [(cam, cam.pending) for cam in self.cameras if cam.pending is not None]
                for cam, _ in batch:
                    cam.pending = None
                self._busy = True
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - keep serving; the caller logs it
                if self._stop:
                    return
                self._on_error(batch, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
