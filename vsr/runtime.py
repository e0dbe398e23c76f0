"""Devices, dtypes and memory: the one place that decides where and how a model runs.

No other module picks a device, chooses a dtype or calls ``.to(device)``; processors ask here.
Hardware choices are explicit: asking for CUDA on a machine without it is an error, never a
silent fallback to the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vsr.errors import DeviceError
from vsr.models.base import ModelDescriptor

ResolvedPrecision = Literal["fp32", "fp16", "bf16"]

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def resolve_device(spec: str) -> torch.device:
    """Turn --device (auto, cpu, cuda, cuda:N) into a device that exists on this machine."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise DeviceError(f"expected --device auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {spec} asked for CUDA, but this PyTorch build or machine has no CUDA GPU",
            hint="use --device cpu, or install a CUDA build of torch on a machine with an "
            "NVIDIA GPU",
        )
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"--device {spec} asked for GPU {index}, but only {count} CUDA device(s) exist",
            hint=f"use cuda:0 to cuda:{count - 1}",
        )
    return torch.device("cuda", index)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX or AVX512-BF16).

    Without those units PyTorch emulates bf16 with fp32 arithmetic plus conversions, which is
    slower than plain fp32, so `--precision auto` must not pick it there.
    """
    flags = _cpu_flags()
    if flags & {"amx_bf16", "avx512_bf16"}:
        return True
    # Without /proc/cpuinfo (macOS, some containers) ask oneDNN's view of the CPU; its
    # capability string names AMX when present, while "AVX512" alone may lack BF16.
    if not flags:
        capability = torch.backends.cpu.get_cpu_capability().upper()
        return "AMX" in capability
    return False


def resolve_precision(
    requested: str, device: torch.device, descriptor: ModelDescriptor
) -> ResolvedPrecision:
    """Pick fp32, fp16 or bf16 for this device and model; `auto` picks the fastest safe one."""
    if requested not in ("auto", "fp32", "fp16", "bf16"):
        raise DeviceError(f"expected --precision auto, fp32, fp16 or bf16, got {requested!r}")
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "auto":
            if descriptor.supports_half:
                return "fp16"
            if descriptor.supports_bfloat16 and bf16_ok:
                return "bf16"
            return "fp32"
        if requested == "fp16" and not descriptor.supports_half:
            raise DeviceError(
                f"model {descriptor.name} does not run correctly in fp16",
                hint="use --precision bf16 or fp32",
            )
        if requested == "bf16":
            if not descriptor.supports_bfloat16:
                raise DeviceError(
                    f"model {descriptor.name} does not run correctly in bf16",
                    hint="use --precision fp16 or fp32",
                )
            if not bf16_ok:
                raise DeviceError(
                    f"GPU {torch.cuda.get_device_name(device)} has no bf16 support",
                    hint="use --precision fp16 or fp32",
                )
        return "fp32" if requested == "fp32" else ("fp16" if requested == "fp16" else "bf16")
    # CPU
    if requested == "fp16":
        raise DeviceError(
            "--precision fp16 is not supported on the CPU (PyTorch has no fast fp16 kernels there)",
            hint="use --precision bf16 on CPUs with AMX/AVX512-BF16, or fp32",
        )
    if requested == "bf16":
        if not descriptor.supports_bfloat16:
            raise DeviceError(
                f"model {descriptor.name} does not run correctly in bf16",
                hint="use --precision fp32",
            )
        return "bf16"
    if requested == "auto" and descriptor.supports_bfloat16 and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def weight_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype weights and inputs are stored in.

    On the CPU bf16 runs through autocast: weights stay fp32 and only the convolutions run in
    bf16, so residual adds and the output keep fp32 accuracy (48.8 dB from fp32 measured on
    animevideov3). On CUDA the weights themselves are converted, which halves memory traffic.
    """
    if device.type == "cpu":
        return torch.float32
    return DTYPES[precision]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """The autocast context a forward pass runs in (a no-op unless bf16 on the CPU)."""
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_module(module: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """Move a network to its device and dtype for inference, in channels_last layout.

    channels_last is what oneDNN (CPU) and cuDNN tensor cores run fastest; it must be set on
    the weights as well as on the input, or PyTorch converts back and forth every layer.
    """
    module.eval()
    module.requires_grad_(False)
    module.to(device=device, dtype=weight_dtype(device, precision))
    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def to_device(
    tensor: torch.Tensor, device: torch.device, precision: str, *, channels_last: bool = True
) -> torch.Tensor:
    """Move an input batch to the model's device and dtype."""
    # A plain (synchronous) copy: pinning a fresh host buffer per batch costs more than the
    # copy saves, and the result is needed right away anyway.
    out = tensor.to(device=device, dtype=weight_dtype(device, precision))
    if channels_last and out.dim() == 4:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """Bring a result back to the CPU as contiguous float32, the pipeline's frame format."""
    return tensor.to(device="cpu", dtype=torch.float32).contiguous()


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) reads as None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except (OSError, UnicodeDecodeError):
        pass
    return 0


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1), or None if unlimited.

    In a container /proc/meminfo shows the host's memory; going past the cgroup limit gets
    the process killed without an exception, so the limit is what counts. Inactive file
    cache is reclaimable and is not counted as used.
    """
    root = CGROUP_ROOT
    for limit_file, usage_file, stat_key in (
        (root / "memory.max", root / "memory.current", "inactive_file"),
        (
            root / "memory" / "memory.limit_in_bytes",
            root / "memory" / "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    ):
        limit = _read_int(limit_file)
        usage = _read_int(usage_file)
        if limit is None or usage is None or limit >= 1 << 60:
            continue
        reclaimable = _stat_value(limit_file.parent / "memory.stat", stat_key)
        return max(0, limit - max(0, usage - reclaimable))
    return None


def available_memory(device: torch.device) -> int:
    """Bytes a model could still use on this device right now."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # Memory PyTorch holds in its cache but no tensor uses is free for our purposes.
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    available = _meminfo_available()
    limited = _cgroup_available()
    if available is not None:
        return available if limited is None else min(available, limited)
    if limited is not None:
        return limited
    # No /proc (macOS): physical memory is an upper bound; callers only take a share of it.
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA OOM and for the CPU allocator failing to get memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def release_cached_memory(device: torch.device) -> None:
    """Give cached blocks back after an OOM so the retry sees all free memory."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_start(device: torch.device) -> int:
    """Start measuring peak device memory; returns the baseline (0 off CUDA)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_memory_since(device: torch.device, baseline: int) -> int:
    """Bytes allocated at the peak since `peak_memory_start`, above its baseline."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return max(0, int(torch.cuda.max_memory_allocated(device)) - baseline)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4


@functools.cache
def tune_cpu_allocator() -> bool:
    """Stop glibc from unmapping and remapping large tensor buffers every frame.

    By default glibc serves each allocation above a threshold with its own mmap and returns it
    to the OS on free; a CPU model allocates hundreds of MB of activations per frame, so every
    frame pays for fresh zeroed pages. Measured on animevideov3-size SRVGG at 960x540 input:
    1.2 million page faults and 2 s of kernel time per frame (fp32) drop to none, and CPU time
    per frame falls 1.35x (fp32) to 1.7x (bf16). Keeping freed memory in the heap makes the
    next frame reuse it; the price is that the process keeps its peak heap until it exits
    and peaks about 1.3x higher (same test: 601 -> 793 MiB RSS), which the auto-tile budget's
    headroom absorbs.
    Runs once per process; a no-op off glibc or when the user set MALLOC_* variables or
    glibc malloc tunables themselves.
    """
    user_set = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")
    if any(os.environ.get(name) for name in user_set) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False  # the user tuned the allocator; their choice wins
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS)
    del gnu_get_libc_version
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_MAX, 0))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and ok
    return ok


@contextlib.contextmanager
def inference(device: torch.device, precision: str) -> Iterator[None]:
    """inference_mode plus the autocast a precision needs, for one forward pass."""
    with torch.inference_mode(), autocast(device, precision):
        yield


# -- streams and pinned buffers: the device graph's plumbing ---------------------------------


class Fence:
    """Work queued on a device that a host buffer waits for (a CUDA event; nothing on the CPU)."""

    def __init__(self, event: torch.cuda.Event | None = None) -> None:
        self.event = event

    def wait(self) -> None:
        if self.event is not None:
            self.event.synchronize()


DONE = Fence()


class HostRing:
    """A fixed number of equal host buffers (pinned when a CUDA device will read them).

    `acquire` hands out a free slot, waiting while all are in use (and until the device work
    that last used the slot, its fence, has finished); `release` gives it back. The number of
    slots bounds host memory whatever the video's length, and the peak of `live` proves it.
    The waits poll `stop` so that a cancelled run never blocks here.
    """

    def __init__(
        self,
        slots: int,
        elements: int,
        dtype: torch.dtype,
        *,
        pin: bool,
        stop: threading.Event | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"expected at least one slot, got {slots}")
        self.slots = slots
        self.buffers = torch.empty((slots, elements), dtype=dtype, pin_memory=pin)
        self._free: list[int] = list(range(slots))
        self._fences: list[Fence] = [DONE] * slots
        self._lock = threading.Condition()
        self._stop = stop or threading.Event()
        self.live = 0
        self.peak_live = 0

    def acquire(self) -> int:
        with self._lock:
            while not self._free:
                if self._stop.is_set():
                    raise RingClosed
                self._lock.wait(timeout=0.1)
            if self._stop.is_set():
                raise RingClosed
            slot = self._free.pop(0)
            self.live += 1
            self.peak_live = max(self.peak_live, self.live)
        # Outside the lock: the device may still be reading the slot's previous contents.
        self._fences[slot].wait()
        self._fences[slot] = DONE
        return slot

    def release(self, slot: int, fence: Fence = DONE) -> None:
        """Give a slot back; it is reused only after `fence` (device work reading it) is done."""
        with self._lock:
            if slot in self._free or not 0 <= slot < self.slots:
                raise ValueError(f"slot {slot} is not in use")
            self._fences[slot] = fence
            self._free.append(slot)
            self.live -= 1
            self._lock.notify()

    def view(self, slot: int) -> torch.Tensor:
        return self.buffers[slot]


class RingClosed(Exception):
    """The run was cancelled while a stage waited for a free buffer."""


class Streams:
    """Upload, compute and download streams on a CUDA device; on the CPU, plain order.

    Two copy streams (host-to-device and device-to-host) rather than one: the upload of batch
    N+1 must not queue behind the download of batch N, which itself waits for the model.
    """

    def __init__(self, device: torch.device, *, timing: bool = False) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.timing = timing and self.cuda
        if self.cuda:
            self.upload = torch.cuda.Stream(device)
            self.compute = torch.cuda.Stream(device)
            self.download = torch.cuda.Stream(device)

    def event(self) -> torch.cuda.Event | None:
        if not self.cuda:
            return None
        return torch.cuda.Event(enable_timing=self.timing)

    def on(self, name: str) -> contextlib.AbstractContextManager[object]:
        """Queue the work of the `with` block on stream `name` (no-op on the CPU)."""
        if not self.cuda:
            return contextlib.nullcontext()
        return torch.cuda.stream(getattr(self, name))

    def record(self, name: str) -> torch.cuda.Event | None:
        if not self.cuda:
            return None
        event = self.event()
        assert event is not None
        event.record(getattr(self, name))
        return event

    def wait(self, name: str, event: torch.cuda.Event | None) -> None:
        """Make stream `name` wait for `event` (device-side; the host does not block)."""
        if event is not None:
            getattr(self, name).wait_event(event)

    def hand_over(self, tensor: torch.Tensor, name: str) -> None:
        """`tensor` made on one stream is used on stream `name`: keep its memory until then."""
        if self.cuda:
            tensor.record_stream(getattr(self, name))
