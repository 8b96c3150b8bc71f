"""Dense CRF refinement of segmentation probabilities (Kraehenbuehl & Koltun 2011).

A fully connected CRF over the pixels with the model's softmax as unary potentials
(``-log p``) and two pairwise terms with Potts compatibility:

* a Gaussian (smoothness) kernel on pixel position, std ``gaussian_sxy`` pixels;
* a bilateral (appearance) kernel on position (std ``sxy`` pixels) and RGB colour
  (std ``srgb`` intensity levels), which pulls pixels of similar colour to the same label.

Mean-field inference runs ``iterations`` steps with pydensecrf's permutohedral lattice.
With ``scale < 1`` the CRF runs on a downscaled frame (``cv2.INTER_AREA``) and the refined
probabilities are upsampled back bilinearly; the position stds are in pixels, so they are
scaled with the frame to keep the same physical neighbourhood.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from seg_perception.core.params import SPECS

PROB_FLOOR = 1e-5  # probabilities are clipped to this before -log (finite unary energies)


@dataclasses.dataclass
class CRFParams:
    """Dense CRF settings (defaults: DeepLab's bilateral 80/13/10 and Gaussian 3/3).

    Attributes:
        iterations: mean-field iterations, 1..50.
        sxy: bilateral kernel position std, pixels at full resolution (> 0).
        srgb: bilateral kernel colour std, 0..255 intensity levels (> 0).
        compat: bilateral kernel weight (Potts compatibility, >= 0).
        gaussian_sxy: smoothness kernel position std, pixels at full resolution (> 0).
        gaussian_compat: smoothness kernel weight (>= 0).
        scale: resolution factor in (0, 1]; 1 = full resolution, 0.5 = half width and height.
    """

    iterations: int = 5
    sxy: float = 80.0
    srgb: float = 13.0
    compat: float = 10.0
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    scale: float = 1.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        it = self.iterations
        low, high = SPECS['crf.iterations'].range
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) \
                or not low <= it <= high:
            raise ValueError(f'CRF iterations must be an integer in {low}..{high}, got {it!r}')
        for name in ('sxy', 'srgb', 'gaussian_sxy'):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f'CRF {name} must be a positive number, got {value!r}')
        for name in ('compat', 'gaussian_compat'):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f'CRF {name} must be a number >= 0, got {value!r}')
        if not _is_real(self.scale) or not 0.0 < self.scale <= 1.0:
            raise ValueError(f'CRF scale must be in (0, 1], got {self.scale!r}')


def _is_real(value: object) -> bool:
    real = (int, float, np.integer, np.floating)
    return isinstance(value, real) and not isinstance(value, bool)


def refine(image: np.ndarray, probability: np.ndarray,
           params: CRFParams | None = None) -> np.ndarray:
    """Refine probabilities with a dense CRF guided by the image colours.

    Args:
        image: (H, W, 3) uint8 RGB frame the probabilities belong to.
        probability: (H, W) float road probability in [0, 1] (binary model), or
            (H, W, C) float class probabilities (softmax, summing to 1 over C).
        params: CRF settings (default ``CRFParams()``); validated.

    Returns:
        float32 array of the same shape as ``probability``: the refined road probability
        (H, W), or the refined class probabilities (H, W, C), each in [0, 1].

    Raises:
        ValueError: bad shapes/dtypes or invalid ``params``.
    """
    params = params or CRFParams()
    params.validate()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
            or image.dtype != np.uint8:
        raise ValueError(f'image must be an HxWx3 uint8 RGB array, got '
                         f'{getattr(image, "shape", None)} {getattr(image, "dtype", None)}')
    probability = np.asarray(probability)
    if probability.ndim not in (2, 3) or probability.shape[:2] != image.shape[:2]:
        raise ValueError(f'probability must be HxW or HxWxC matching the image '
                         f'{image.shape[:2]}, got {probability.shape}')
    if not np.issubdtype(probability.dtype, np.floating):
        raise ValueError(f'probability must be a float array, got {probability.dtype}')
    binary = probability.ndim == 2
    if not binary and probability.shape[2] < 2:
        raise ValueError(f'class probabilities need at least 2 classes, got {probability.shape}')

    h, w = image.shape[:2]
    # OpenCV and pydensecrf need plain C-contiguous arrays (no copy when already one).
    image = np.ascontiguousarray(image)
    if binary:
        road = probability.astype(np.float32, copy=False)
        probs = np.stack([1.0 - road, road], axis=-1)  # (H, W, 2)
    else:
        probs = np.ascontiguousarray(probability, dtype=np.float32)

    scale = float(params.scale)
    if scale < 1.0:
        hs, ws = max(1, round(h * scale)), max(1, round(w * scale))
        small_image = cv2.resize(image, (ws, hs), interpolation=cv2.INTER_AREA)
        small_probs = _resize_probs(probs, ws, hs, cv2.INTER_AREA)
        # Effective scale per axis (rounding): position stds follow the frame.
        s = math.sqrt((hs / h) * (ws / w))
        refined = _dense_crf(small_image, small_probs, params, s)
        refined = _resize_probs(refined, w, h, cv2.INTER_LINEAR)
    else:
        refined = _dense_crf(image, probs, params, 1.0)
    if binary:
        return np.ascontiguousarray(refined[:, :, 1])
    return refined


def _resize_probs(probs: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    """Resize (H, W, C) float32 probabilities; keeps the channel axis for C = 1..512."""
    out = cv2.resize(probs, (width, height), interpolation=interpolation)
    return out[:, :, None] if out.ndim == 2 else out


def _dense_crf(image: np.ndarray, probs: np.ndarray, params: CRFParams,
               pixel_scale: float) -> np.ndarray:
    """Run pydensecrf on (h, w, 3) uint8 and (h, w, C) float32; return (h, w, C) float32."""
    import pydensecrf.densecrf as dcrf  # optional C extension, only needed when CRF is on

    h, w, c = probs.shape
    # pydensecrf wants the unary as (C, h*w) float32, C-contiguous: one transposing copy
    # (never a view of the caller's array: it is modified in place below).
    unary = np.empty((c, h * w), np.float32)
    unary[:] = probs.reshape(h * w, c).T
    np.clip(unary, PROB_FLOOR, 1.0, out=unary)
    np.log(unary, out=unary)
    np.negative(unary, out=unary)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(unary)
    if params.gaussian_compat > 0:
        crf.addPairwiseGaussian(sxy=max(params.gaussian_sxy * pixel_scale, 1e-3),
                                compat=float(params.gaussian_compat))
    if params.compat > 0:
        crf.addPairwiseBilateral(sxy=max(params.sxy * pixel_scale, 1e-3),
                                 srgb=float(params.srgb),
                                 rgbim=image, compat=float(params.compat))
    q = np.asarray(crf.inference(int(params.iterations)), dtype=np.float32)  # (C, h*w)
    return np.ascontiguousarray(q.reshape(c, h, w).transpose(1, 2, 0))
