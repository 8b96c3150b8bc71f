"""The one inference pipeline: segment -> optional dense CRF -> labels -> outputs.

Built from :class:`seg_perception.core.params.Settings` (:meth:`Pipeline.from_settings`) or from a
:class:`~seg_perception.runtime.segmenter.Segmenter`, and used by the node, ``seg_bag eval``
and the evaluator (``seg_evaluate``, the trainer's validation), so all of them turn
probabilities into labels and overlays the same way. The Segmenter only maps frames to
probabilities.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from seg_perception.core import crf as dense_crf
from seg_perception.core import preprocess, render
from seg_perception.core.crf import CRFParams
from seg_perception.core.formats import UsageError, check_model_for_backend
from seg_perception.core.params import ConfigError, Settings


@dataclasses.dataclass
class FrameOutput:
    """One frame's result, at the frame's own resolution.

    Attributes:
        probability: (H, W) float32 road probability in [0, 1] (after the CRF when on).
        labels: (H, W) uint8 class ids (binary models: road class where probability >=
            threshold; multi-class: argmax).
        class_probabilities: (H, W, C) float32 softmax, only when asked for.
    """

    probability: np.ndarray
    labels: np.ndarray
    class_probabilities: np.ndarray | None = None


def require_crf() -> Any:
    """The :mod:`seg_perception.core.crf` module, once pydensecrf (optional) is importable.

    Raises:
        ConfigError: pydensecrf is not installed.
    """
    try:
        import pydensecrf.densecrf  # noqa: F401 - the optional C extension the CRF needs
    except ImportError as exc:
        raise ConfigError(f'crf.enabled needs pydensecrf ({exc})') from None
    return dense_crf


class Pipeline:
    """Frames -> :class:`FrameOutput` (and overlays) for one model and its settings.

    Args:
        segmenter: a :class:`~seg_perception.runtime.segmenter.Segmenter` (frames ->
            probabilities).
        threshold: road threshold of binary models; ``None`` = the model card's.
        crf: the base ``crf.CRFParams`` (validated; ``None`` = the defaults), used when
            ``crf_enabled`` or when :meth:`run` asks for it.
        crf_enabled: refine with the CRF by default.
        overlay_color: road colour [R, G, B] in overlays; ``None`` = the card palette.
        overlay_alpha: overlay colour weight in [0, 1].

    Attributes:
        last_segment_ms: the last :meth:`run`'s ``Segmenter.segment`` call, ms.
        last_forward_ms: its bare forward pass (no pre/post-processing), ms.
        last_crf_ms: its CRF time over all frames, ms (0 when off).
    """

    def __init__(self, segmenter: Any, threshold: float | None = None, crf: Any = None,
                 crf_enabled: bool = False, overlay_color: Sequence[int] | None = None,
                 overlay_alpha: float = 0.5, backend_note: str = '') -> None:
        """Check the settings against the model; import the CRF when it is on.
        ``backend_note``: why ``backend: auto`` chose this runtime ('' = chosen by hand).
        """
        self.segmenter = segmenter
        self.card = segmenter.card
        self.road_class = int(self.card.road_class)
        self.num_classes = int(self.card.num_classes)
        self.threshold = float(self.card.threshold if threshold is None else threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f'threshold must be in [0, 1], got {self.threshold}')
        self._crf_module = require_crf() if crf_enabled else None
        if crf is None:
            crf = CRFParams()
        crf.validate()
        self.crf = crf
        self.crf_enabled = bool(crf_enabled)
        palette = [list(c) for c in self.card.palette]
        if overlay_color is not None:
            palette[self.road_class] = [int(c) for c in overlay_color]
        self.palette = palette
        self.palette_bgr = render.reverse_channels(palette)
        self.overlay_alpha = float(overlay_alpha)
        # binary models colour the road only; multi-class models every class
        self.overlay_classes = [self.road_class] if self.num_classes == 2 else None
        self.last_segment_ms = self.last_forward_ms = self.last_crf_ms = 0.0
        self.backend_note = backend_note

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        """The pipeline the node runs for ``settings`` (TensorFlow / onnxruntime are
        imported here, after an ONNX model file and the runtime were checked).

        Raises:
            ConfigError: the runtime, the model file or a setting is unusable (one line).
        """
        if settings.backend == 'onnxruntime':
            try:
                check_model_for_backend(settings.model_path, 'onnxruntime',
                                        "parameter 'model_path':")
            except UsageError as exc:
                raise ConfigError(str(exc)) from None
        try:
            crf = CRFParams(**settings.crf)
            crf.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if settings.crf_enabled:
            require_crf()  # before the model loads: a missing pydensecrf fails fast
        from seg_perception.model.model_file import ModelFileError  # imports Keras/TensorFlow
        from seg_perception.runtime.segmenter import Segmenter
        try:
            segmenter = Segmenter(settings.model_path, device=settings.device,
                                  input_mode=settings.input_mode,
                                  input_size=settings.input_size,
                                  precision=settings.precision, backend=settings.backend,
                                  providers=settings.providers, tta=settings.tta)
            return cls(segmenter, threshold=settings.threshold, crf=crf,
                       crf_enabled=settings.crf_enabled,
                       overlay_color=settings.overlay_color,
                       overlay_alpha=settings.overlay_alpha,
                       backend_note=settings.backend_note)
        except ModelFileError as exc:
            raise ConfigError(f'model file unusable: {exc}') from None
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None

    # -- inference -----------------------------------------------------------------------
    def run(self, images: Sequence[np.ndarray], bgr: bool | Sequence[bool] = False,
            threshold: float | None = None, crf: bool | None = None,
            crf_iterations: int | None = None, class_probabilities: bool = False,
            validated: bool = False) -> list[FrameOutput]:
        """Segment a batch of frames (sizes may differ) in one forward pass, refine with
        the CRF when on, and label.

        Args:
            images: frames, each (H_i, W_i, 3) uint8 RGB (BGR where ``bgr`` says so).
            bgr: the frames are BGR (one flag for all or one per frame).
            threshold: road threshold for this call; default :attr:`threshold`.
            crf: refine with the CRF; default :attr:`crf_enabled`.
            crf_iterations: mean-field iterations for this call; default the base params'.
            class_probabilities: also return the (H, W, C) softmax per frame.
            validated: the frames already passed ``preprocess.check_frame``.

        Raises:
            preprocess.InputError: a frame is not a usable uint8 image.
            ConfigError: the CRF is asked for without pydensecrf.
        """
        thr = self.threshold if threshold is None else float(threshold)
        use_crf = self.crf_enabled if crf is None else bool(crf)
        multi = self.num_classes > 2
        t0 = time.perf_counter()
        probs = self.segmenter.segment(images, class_probabilities=class_probabilities
                                       or (use_crf and multi), bgr=bgr, validated=validated)
        t1 = time.perf_counter()
        self.last_segment_ms = (t1 - t0) * 1e3
        self.last_forward_ms = self.segmenter.last_forward_ms
        if use_crf:
            params = self.crf if crf_iterations is None else dataclasses.replace(
                self.crf, iterations=int(crf_iterations))
            for image, is_bgr, p in zip(images, preprocess.bgr_flags(bgr, len(images)), probs):
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if is_bgr else image
                self._refine(rgb, p, params)
        self.last_crf_ms = (time.perf_counter() - t1) * 1e3 if use_crf else 0.0
        return [FrameOutput(p.probability, self.labels(p.probability, p.class_probabilities,
                                                       thr),
                            p.class_probabilities if class_probabilities else None)
                for p in probs]

    def _refine(self, image: np.ndarray, p: Any, params: Any) -> None:
        """Replace ``p``'s probabilities by the CRF's (in place; ``image`` RGB)."""
        crf = self._crf_module or require_crf()
        self._crf_module = crf
        if p.class_probabilities is not None and self.num_classes > 2:
            p.class_probabilities = crf.refine(image, p.class_probabilities, params)
            p.probability = np.ascontiguousarray(p.class_probabilities[..., self.road_class],
                                                 np.float32)
        else:
            p.probability = np.asarray(crf.refine(image, p.probability, params), np.float32)

    def labels(self, probability: np.ndarray, class_probs: np.ndarray | None = None,
               threshold: float | None = None) -> np.ndarray:
        """(H, W) uint8 class ids: thresholded road probability (binary models, or no class
        probabilities given) or the argmax of the (H, W, C) class probabilities.
        """
        if self.num_classes == 2 or class_probs is None:
            thr = self.threshold if threshold is None else threshold
            road = (probability >= thr).view(np.uint8)  # 1 = road, no copy
            return road if self.road_class == 1 else np.uint8(1) - road
        return np.argmax(class_probs, axis=-1).astype(np.uint8)

    # -- outputs -------------------------------------------------------------------------
    def overlay(self, image: np.ndarray, labels: np.ndarray, alpha: float | None = None,
                bgr: bool = False, out_bgr: bool = False,
                out: np.ndarray | None = None) -> np.ndarray:
        """The (H, W, 3) uint8 overlay of ``labels`` on ``image``, in BGR when ``out_bgr``.

        A BGR frame is drawn with the reversed palette, so BGR in and BGR out needs no
        channel swap; otherwise one swap at the end (rendered into ``out`` when given).
        """
        a = self.overlay_alpha if alpha is None else float(alpha)
        result = render.overlay(image, labels, self.palette_bgr if bgr else self.palette, a,
                                self.overlay_classes, out=out)
        if bgr != out_bgr:
            cv2.cvtColor(result, cv2.COLOR_BGR2RGB, dst=result)  # the same swap either way
        return result

    def summary(self) -> dict[str, Any]:
        """Model and settings in effect, for reports and logs."""
        seg = self.segmenter
        out = {'model': str(seg.model_path), 'input_mode': seg.input_mode,
               'input_size': list(seg.input_size), 'threshold': self.threshold,
               'precision': seg.precision, 'device': seg.device, 'backend': seg.backend,
               'tta': seg.tta}
        if seg.backend == 'onnxruntime':
            out['providers'] = ', '.join(seg.providers)
        if self.backend_note:
            out['backend_choice'] = self.backend_note
        if self.crf_enabled:
            out['crf_scale'] = float(self.crf.scale)
        return out

    def warmup(self, batch: int = 1) -> None:
        """Compile for the model size and a second size (TensorFlow then traces a
        shape-generic function), and for a batch of ``batch`` frames.
        """
        h, w = self.segmenter.input_size
        self.segmenter.warmup([(h, w), (h + 32, w + 32)])
        if batch > 1:
            self.segmenter.segment([np.zeros((h, w, 3), np.uint8)] * batch)
