"""Where training runs: device choice, CPU threads, mixed precision, determinism, peak memory."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import sys
from pathlib import Path

import torch

from seqbench.errors import TrainingError


def resolve_device(spec: str) -> torch.device:
    """`auto` = CUDA, then Apple MPS, then CPU; an explicit device must exist on this machine."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise TrainingError(f"training.device is {spec!r} but no such CUDA device is visible here; "
                            "set training.device to auto or cpu in params.yaml")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("training.device is 'mps' but Apple MPS is not available here; "
                            "set training.device to auto or cpu in params.yaml")
    return device


def configure(device: torch.device, threads: int | None) -> int:
    """Set torch's CPU threads (0/None: every core), CPU determinism and the heap's reuse of freed
    memory; returns the thread count."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    keep_freed_memory()
    if device.type == "cuda":
        # CPU kernels are deterministic already (same seed -> bit-identical metrics, tested); on CUDA,
        # ask for deterministic kernels where they exist (the flag costs ~2 s of imports per job)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.get_num_threads()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc serve every allocation from its heap and keep freed memory there for reuse.

    By default glibc maps each block above its mmap threshold (128 KiB, adapting up to 32 MiB) fresh
    from the kernel and unmaps it when freed, so a training step that allocates such blocks page-faults
    all of them in again, every step. oneDNN's LSTM at batch 256 and 32 units (120 steps) allocates
    one of about 34 MB per training step: 8,653 page faults and 32-38 ms per step that way, none and
    20-22 ms from the heap (the "cliff" where per-sample time doubled above 4096 rows x units).
    The price is peak memory, as freed blocks stay with the process: 20 training steps of a 2-layer
    GRU and an LSTM at batch 256 peaked at 550-576 MB instead of 489-506 MB. Blocks of ever-changing
    sizes fragment it: IMDB batches cut to every length from 1 to 600 tokens took the embedding BiLSTM to
    4.2 GB, hence its lengths in multiples of 64 (ModelEntry.length_multiple).
    Returns whether the setting took (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs: nothing to tune
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when mixed precision is on; a no-op elsewhere (CPU/MPS stay float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated tensor memory; otherwise this process's peak resident set size.

    On Linux from /proc/self/status VmHWM, not ru_maxrss: ru_maxrss survives exec, so a job started
    by a parent that once held more (Snakemake, DVC, a benchmark driver) reports the parent's peak."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB elsewhere on Unix, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(device: torch.device, state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
