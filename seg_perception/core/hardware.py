"""What this machine has: CPU feature flags, an NVIDIA GPU, installed optional runtimes.

Standard library only: nothing here imports TensorFlow, CUDA or ONNX Runtime.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

#: int8 dot-product instructions (``/proc/cpuinfo`` names); without them an int8 export
#: needs 7-bit weights
INT8_DOT_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8')
#: bfloat16 matrix units
BF16_FLAGS = ('amx_bf16', 'avx512_bf16')
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first bfloat16 instructions: with these,
# TensorFlow's bfloat16 convolutions cannot run.
NO_BF16_ISA_CAPS = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX512_CORE', 'AVX512_CORE_VNNI')
ORT_INSTALL_HINT = ('backend onnxruntime needs the onnxruntime package: pip install '
                    'onnxruntime==1.31.1 (CPU) or onnxruntime-gpu==1.31.1 (CUDA/TensorRT)')


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of ``cpuinfo`` (this machine's ``/proc/cpuinfo`` when ``None``;
    empty where unreadable).
    """
    if cpuinfo is None:
        try:
            cpuinfo = pathlib.Path('/proc/cpuinfo').read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith('flags'):
            return frozenset(line.partition(':')[2].split())
    return frozenset()


def int8_dot_flags(flags: frozenset[str] | None = None) -> list[str]:
    """The int8 dot-product instructions (VNNI, AMX-INT8) among ``flags`` (this CPU's when
    ``None``).
    """
    return sorted((cpu_flags() if flags is None else flags).intersection(INT8_DOT_FLAGS))


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True if the CPU has bfloat16 matrix units (AMX-BF16 or AVX512-BF16) and oneDNN may
    use them (no ``ONEDNN_MAX_CPU_ISA`` cap below them, e.g. ``AVX2`` to run as an
    AVX2-only CPU).
    """
    if os.environ.get('ONEDNN_MAX_CPU_ISA', '').strip().upper() in NO_BF16_ISA_CAPS:
        return False
    return bool((cpu_flags() if flags is None else flags).intersection(BF16_FLAGS))


def nvidia_gpu_present() -> bool:
    """True if the NVIDIA driver lists a GPU (no CUDA or framework import)."""
    gpus = pathlib.Path('/proc/driver/nvidia/gpus')
    return (gpus.is_dir() and any(gpus.iterdir())) or pathlib.Path('/dev/nvidia0').exists()


def onnxruntime_installed() -> bool:
    """True if onnxruntime can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec('onnxruntime') is not None
    except (ImportError, ValueError):  # a None entry in sys.modules (blocked import)
        return False
