"""``backend: auto``: which runtime and model file to use on this machine, decided from the
model file, the CPU flags and what is installed (no TensorFlow or ONNX Runtime import).

The rule (measurements behind it: docs/DEPLOYMENT.md):

1. An ``.onnx`` model file runs on ONNX Runtime (nothing else can run it).
2. With a GPU (``device: gpu``, or ``auto`` and an NVIDIA device present) Keras runs on it.
3. On a CPU with int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8), the int8
   export beside the ``.segmodel`` (``<stem>.int8.onnx``, from ``seg_export --quantize
   int8``) runs on ONNX Runtime when onnxruntime is installed and the export carries the
   ``.segmodel``'s model card.
4. Else Keras, whose ``precision: auto`` picks bfloat16 on CPUs with bf16 units.

Without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with a pairwise
16-bit sum that 8-bit weights can saturate (onnxruntime PR #12088), so there ``auto`` uses
the int8 export only when it has 7-bit weights (``seg_export --quantize int8
--reduce-range``, recorded in its metadata), else Keras.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import zipfile

from seg_perception.core import hardware
from seg_perception.core.formats import (
    CARD_KEY,
    CARD_NAME,
    INT8_7BIT,
    INT8_SUFFIX,
    PRECISION_KEY,
    backend_of_file,
)


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """What ``backend: auto`` resolved to.

    Attributes:
        backend: ``'keras'`` or ``'onnxruntime'``.
        model_path: the model file to load (the ``.segmodel``, or an ``.onnx`` export).
        reason: one line for the configuration log.
        providers: ONNX Runtime providers to use instead of the configured ones (the int8
            export: ``('cpu',)``), or ``None``.
    """

    backend: str
    model_path: pathlib.Path
    reason: str
    providers: tuple[str, ...] | None = None


def int8_export_of(model_path: pathlib.Path) -> pathlib.Path:
    """Where ``auto`` looks for the int8 export of a ``.segmodel``: ``<stem>.int8.onnx``."""
    return model_path.with_name(model_path.stem + INT8_SUFFIX)


def export_metadata(segmodel: pathlib.Path, onnx_file: pathlib.Path) -> dict[str, str] | None:
    """The ONNX export's seg_perception metadata if it carries the model card of
    ``segmodel`` (so it was exported from this model, not from an earlier one left beside
    it); ``None`` if the cards differ or either file is unreadable.
    """
    try:
        import onnx
        with zipfile.ZipFile(segmodel) as zf:
            card = json.loads(zf.read(CARD_NAME).decode('utf-8'))
        proto = onnx.load(str(onnx_file), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        return meta if CARD_KEY in meta and json.loads(meta[CARD_KEY]) == card else None
    except Exception:  # noqa: BLE001 - unreadable (zip, JSON, protobuf, missing onnx): no
        return None


def choose_backend(model_path: pathlib.Path, device: str = 'auto',
                   flags: frozenset[str] | None = None, gpu: bool | None = None,
                   onnxruntime_installed: bool | None = None) -> BackendChoice:
    """Resolve ``backend: auto`` for ``model_path`` (an existing ``.segmodel`` or ``.onnx``).

    Args:
        model_path: the configured model file.
        device: the ``device`` parameter (``auto``, ``cpu`` or ``gpu``).
        flags: the CPU's feature flags (detected when ``None``, as for the next two).
        gpu: an NVIDIA GPU is present.
        onnxruntime_installed: the onnxruntime package can be imported.
    """
    if backend_of_file(model_path) == 'onnxruntime':
        return BackendChoice('onnxruntime', model_path, 'auto: an ONNX model file')
    if gpu is None:
        gpu = device != 'cpu' and hardware.nvidia_gpu_present()
    if device == 'gpu' or gpu:
        return BackendChoice('keras', model_path, 'auto: Keras on the GPU')
    int8 = int8_export_of(model_path)
    vnni = hardware.int8_dot_flags(flags)
    if not int8.is_file():
        return BackendChoice('keras', model_path, f'auto: Keras (no int8 export {int8.name} '
                             'beside the model; seg_export --quantize int8 makes one)')
    meta = export_metadata(model_path, int8)
    if meta is None:
        return BackendChoice('keras', model_path, f'auto: Keras ({int8.name} was exported '
                             'from another model: its model card differs; export it again)')
    seven_bit = meta.get(PRECISION_KEY) == INT8_7BIT
    if not vnni and not seven_bit:
        return BackendChoice('keras', model_path, f'auto: Keras (this CPU has no int8 '
                             f'dot-product instructions (VNNI/AMX) for {int8.name}, whose '
                             '8-bit weights can saturate without them; seg_export '
                             '--reduce-range makes one for this CPU)')
    if onnxruntime_installed is None:
        onnxruntime_installed = hardware.onnxruntime_installed()
    if not onnxruntime_installed:
        return BackendChoice('keras', model_path, f'auto: Keras ({int8.name} found, but '
                             'onnxruntime is not installed)')
    why = (f'this CPU has {", ".join(vnni)}' if vnni else
           '7-bit weights, safe without VNNI; its speed on such a CPU is not measured here')
    return BackendChoice('onnxruntime', int8, f'auto: ONNX Runtime int8 ({int8.name}; {why})',
                         providers=('cpu',))
