"""vsr.runtime: device and precision choice, memory queries, autocast and allocator tuning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vsr import runtime
from vsr.errors import DeviceError
from vsr.models.base import ModelDescriptor

HAS_CUDA = torch.cuda.is_available()
DESC = ModelDescriptor(name="tiny", architecture="SRVGGNetCompact", scale=2)
NO_HALF = ModelDescriptor(
    name="fp32-only",
    architecture="X",
    scale=2,
    supports_half=False,
    supports_bfloat16=False,
)
CPU = torch.device("cpu")


def test_auto_device_is_cuda_only_when_available() -> None:
    assert runtime.resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert runtime.resolve_device("cpu") == CPU
    assert runtime.resolve_device(" CPU ") == CPU


@pytest.mark.skipif(HAS_CUDA, reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_gpu_is_an_error_not_a_fallback(spec: str) -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU") as info:
        runtime.resolve_device(spec)
    assert "--device cpu" in str(info.value)
    assert info.value.exit_code == 6


def test_bad_device_spec() -> None:
    with pytest.raises(DeviceError, match="expected --device"):
        runtime.resolve_device("tpu")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"fpu", "avx2", "avx512f"}, False),
        ({"fpu", "avx512f", "avx512_bf16"}, True),
        ({"fpu", "amx_bf16", "amx_tile"}, True),
    ],
)
def test_bf16_support_read_from_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: bool
) -> None:
    runtime.cpu_supports_bf16.cache_clear()
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: flags)
    try:
        assert runtime.cpu_supports_bf16() is expected
    finally:
        runtime.cpu_supports_bf16.cache_clear()


def test_bf16_support_matches_this_machine() -> None:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    has = "amx_bf16" in text or "avx512_bf16" in text
    if text:
        assert runtime.cpu_supports_bf16() is has


def test_cpu_precision_auto_follows_bf16_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_precision("auto", CPU, DESC) == "bf16"
    # A model that is wrong in bf16 stays in fp32 even on a bf16 CPU.
    assert runtime.resolve_precision("auto", CPU, NO_HALF) == "fp32"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    assert runtime.resolve_precision("auto", CPU, DESC) == "fp32"
    assert runtime.resolve_precision("fp32", CPU, DESC) == "fp32"
    # Asked for explicitly, bf16 runs even where it is emulated.
    assert runtime.resolve_precision("bf16", CPU, DESC) == "bf16"


def test_fp16_on_cpu_is_refused_with_a_hint() -> None:
    with pytest.raises(DeviceError, match="fp16 is not supported on the CPU") as info:
        runtime.resolve_precision("fp16", CPU, DESC)
    assert "bf16" in str(info.value) and "fp32" in str(info.value)


def test_bf16_refused_for_a_model_that_cannot_run_it() -> None:
    with pytest.raises(DeviceError, match="does not run correctly in bf16"):
        runtime.resolve_precision("bf16", CPU, NO_HALF)


def test_unknown_precision() -> None:
    with pytest.raises(DeviceError, match="expected --precision"):
        runtime.resolve_precision("int8", CPU, DESC)


def test_cpu_memory_comes_from_meminfo() -> None:
    free = runtime.available_memory(CPU)
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        assert free > 0
        return
    fields = {
        line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()
    }
    assert 0 < free <= fields["MemTotal"]
    # MemAvailable moves while other processes run; within 10% of a fresh read.
    assert abs(free - fields["MemAvailable"]) < 0.1 * fields["MemTotal"]


@pytest.mark.parametrize("version", [1, 2])
def test_container_memory_limit_caps_free_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    gib = 1 << 30
    if version == 2:
        (tmp_path / "memory.max").write_text(f"{2 * gib}\n")
        (tmp_path / "memory.current").write_text(f"{gib + gib // 2}\n")
        (tmp_path / "memory.stat").write_text(f"anon 5\ninactive_file {gib // 4}\n")
    else:
        v1 = tmp_path / "memory"
        v1.mkdir()
        (v1 / "memory.limit_in_bytes").write_text(f"{2 * gib}\n")
        (v1 / "memory.usage_in_bytes").write_text(f"{gib + gib // 2}\n")
        (v1 / "memory.stat").write_text(f"cache 9\ntotal_inactive_file {gib // 4}\n")
    monkeypatch.setattr(runtime, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(runtime, "_meminfo_available", lambda: 64 * gib)
    # 2 GiB limit - (1.5 GiB used - 0.25 GiB reclaimable cache) = 0.75 GiB.
    assert runtime.available_memory(CPU) == gib * 3 // 4
    # No limit ("max"): the host's MemAvailable.
    if version == 2:
        (tmp_path / "memory.max").write_text("max\n")
    else:
        (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert runtime.available_memory(CPU) == 64 * gib


def test_autocast_runs_convolutions_in_bf16_on_cpu_only_when_asked() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    runtime.prepare_module(conv, CPU, "bf16")
    x = runtime.to_device(torch.rand(1, 3, 8, 8), CPU, "bf16")
    # Weights stay fp32 on the CPU: autocast does the casting, residual adds stay accurate.
    assert conv.weight.dtype == torch.float32
    assert x.dtype == torch.float32
    with runtime.inference(CPU, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with runtime.inference(CPU, "fp32"):
        out = conv(x)
        assert out.dtype == torch.float32
    assert out.is_inference()


def test_prepare_module_sets_channels_last_and_eval() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    net = nn.Sequential(conv, nn.Dropout(0.5))
    runtime.prepare_module(net, CPU, "fp32")
    assert not net.training
    weight = conv.weight
    assert not weight.requires_grad
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    x = runtime.to_device(torch.rand(2, 3, 5, 7), CPU, "fp32")
    assert x.is_contiguous(memory_format=torch.channels_last)
    back = runtime.to_host(x)
    assert back.is_contiguous() and back.dtype == torch.float32


def test_out_of_memory_recognised() -> None:
    assert runtime.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert runtime.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not runtime.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not runtime.is_out_of_memory(ValueError("x"))


_FAULTS_SCRIPT = """
import resource, sys, torch
from vsr import runtime
if sys.argv[1] == "tuned":
    assert runtime.tune_cpu_allocator()
torch.set_num_threads(1)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.PReLU(32),
    torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.PReLU(32),
    torch.nn.Conv2d(32, 12, 3, padding=1), torch.nn.PixelShuffle(2),
).eval()
x = torch.rand(1, 3, 384, 384)  # 18 MiB activations, like a small video frame
with torch.inference_mode():
    net(x)
    net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux page-fault counters")
def test_allocator_tuning_stops_refaulting_activation_buffers() -> None:
    """Per-frame forward passes stop mapping fresh pages once the allocator is tuned."""
    import os
    import subprocess
    import sys

    if not runtime.tune_cpu_allocator():
        pytest.skip("not glibc, or MALLOC_* set in the environment")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(root)
    faults = {}
    for mode in ("default", "tuned"):
        done = subprocess.run(
            [sys.executable, "-c", _FAULTS_SCRIPT, mode],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            check=True,
        )
        faults[mode] = int(done.stdout.strip().splitlines()[-1])
    # glibc maps (and the kernel zeroes) every large activation afresh each pass by default:
    # measured ~13800 faults per pass here; reused heap memory needs none.
    assert faults["default"] > 3 * 5000
    assert faults["tuned"] < faults["default"] / 10


def test_allocator_tuning_is_once_and_harmless() -> None:
    first = runtime.tune_cpu_allocator()
    assert runtime.tune_cpu_allocator() is first
    # Allocating and freeing large tensors still works afterwards.
    for _ in range(3):
        big = torch.empty(64 << 20, dtype=torch.uint8)
        big.fill_(1)
        assert int(big[-1]) == 1
        del big


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_precision_and_memory() -> None:
    dev = runtime.resolve_device("cuda")
    assert dev.type == "cuda"
    assert runtime.resolve_precision("auto", dev, DESC) == "fp16"
    assert runtime.resolve_precision("auto", dev, NO_HALF) == "fp32"
    assert runtime.available_memory(dev) > 0
    conv = runtime.prepare_module(nn.Conv2d(3, 4, 3, padding=1), dev, "fp16")
    assert conv.weight.dtype == torch.float16
    x = runtime.to_device(torch.rand(1, 3, 8, 8), dev, "fp16")
    with runtime.inference(dev, "fp16"):
        assert conv(x).dtype == torch.float16
    with pytest.raises(DeviceError, match="GPU 7"):
        runtime.resolve_device("cuda:7") if torch.cuda.device_count() < 8 else pytest.skip()
