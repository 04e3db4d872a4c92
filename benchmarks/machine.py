"""The machine a benchmark ran on: CPU model, cores, memory, in words. Every benchmark that
records where it was measured asks here (``environment.json``, ``efficiency.json``, the
TA-latency and leak-guard results).

Cores and memory come from psutil (a gpta dependency). psutil has no CPU model name, and
``platform.processor()`` gives only the architecture on Linux (``x86_64``, or nothing), so the
name is read from ``/proc/cpuinfo`` where there is one; elsewhere ``platform`` answers.
"""

from __future__ import annotations

import platform
from pathlib import Path

import psutil


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> int | None:
    """Logical CPU cores (``None`` when the system does not say)."""
    return psutil.cpu_count(logical=True)


def ram_gb() -> float:
    """Physical memory in GiB, one decimal."""
    return round(psutil.virtual_memory().total / 2**30, 1)


def describe(device: str) -> str:
    """The machine a figure was measured on, in words: the GPU when ``device`` is not the
    CPU and one is there, else the CPU, its cores and torch's thread count."""
    try:
        import torch

        if device != "cpu" and torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:  # pragma: no cover
        pass
    return f"CPU {cpu_model()}, {cores()} cores (torch threads {_threads()})"


def _threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return None
