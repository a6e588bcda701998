"""Where training runs: device choice, CPU threads, mixed precision, determinism, peak memory."""

from __future__ import annotations

import contextlib
import os
import resource
import sys

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
    """Set torch's CPU threads (0/None: every core) and CPU determinism; returns the thread count."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if device.type == "cuda":
        # CPU kernels are deterministic already (same seed -> bit-identical metrics, tested); on CUDA,
        # ask for deterministic kernels where they exist (the flag costs ~2 s of imports per job)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.get_num_threads()


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when mixed precision is on; a no-op elsewhere (CPU/MPS stay float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated tensor memory; otherwise the process's peak resident set size."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
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
