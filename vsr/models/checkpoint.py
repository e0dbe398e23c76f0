"""Load a user's checkpoint file safely and find out which network it belongs to.

Files are read as data only: `.safetensors` through safetensors, and `.pth` / `.pt` / `.ckpt`
through ``torch.load(weights_only=True)``, which refuses any pickle that would import or call
something besides tensors and plain containers. Plain pickle is never used.

The architectures of `vsr.models.archs.ARCHS` (RRDBNet, SRVGGNetCompact) in the BasicSR key
layout are tried first, in that order, each `Arch` reading every hyper-parameter from tensor
shapes. Anything else (SwinIR, HAT, SPAN, old-layout ESRGAN, ...) goes to spandrel, an optional
extra imported only when such a file shows up.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsr.errors import InputNotFoundError, UnsafeCheckpointError, WeightsError
from vsr.models.archs import ARCHS, arch_names
from vsr.models.archs.arch import Arch, StateDict
from vsr.models.base import ModelDescriptor, Tiling

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".ckpt", ".safetensors")
# Keys that training frameworks wrap the real state dict in (BasicSR, Lightning, others).
_WRAPPER_KEYS = (
    "params_ema",
    "params-ema",
    "params",
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "netG",
    "generator",
)
# Not "model.": old-layout ESRGAN keys are model.0.weight, which spandrel needs as they are.
_PREFIXES = ("module.", "netG.")

SPANDREL_HINT = (
    "install the community extra: pip install 'vsr[community]' "
    "(spandrel needs torchvision; use torch==2.14.1 with torchvision==0.29.1)"
)


@dataclass(frozen=True)
class LoadedModel:
    """A network with its weights loaded, and the facts callers need about it."""

    network: nn.Module
    descriptor: ModelDescriptor
    # Smallest input side the network accepts, and whether it needs square input (a few
    # community architectures); the processor pads to satisfy both.
    min_size: int = 0
    square: bool = False


@dataclass(frozen=True)
class DetectedArch:
    """An architecture recognised from state-dict keys and shapes, with its constructor args."""

    arch: Arch
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.arch.name

    def build(self) -> nn.Module:
        return self.arch.build(self.kwargs)

    @property
    def scale(self) -> int:
        return self.arch.scale(self.kwargs)

    @property
    def macs_per_pixel(self) -> float:
        return self.arch.count_macs(self.kwargs)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputNotFoundError("model checkpoint not found", path=path)
    if path.is_dir():
        raise WeightsError(
            "expected a checkpoint file, got a directory",
            path=path,
            hint=f"point --model at one of {', '.join(CHECKPOINT_SUFFIXES)}",
        )
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise WeightsError(
            f"expected a checkpoint ending in {', '.join(CHECKPOINT_SUFFIXES)}, "
            f"got {path.suffix or 'no extension'!r}",
            path=path,
        )


def _unsafe_global(message: str) -> str | None:
    """What a refused pickle wanted to run, when that was why torch refused it."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    if match:
        return match.group(1)
    # INST and OBJ build an object from a class named in the pickle: code, not data.
    if re.search(r"Unsupported operand (105|111)\b", message):
        return "a class instance (pickle INST/OBJ)"
    return None


def _numpy_safe_globals() -> list[Any]:
    """numpy scalars and dtypes: plain data some training checkpoints carry (e.g. a loss).

    They rebuild a number, never call user code, so allowing them keeps those files loadable.
    """
    try:
        import numpy as np
    except ImportError:
        return []
    allowed: list[Any] = [np.dtype]
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    multiarray = getattr(core, "multiarray", None)
    if multiarray is not None and hasattr(multiarray, "scalar"):
        allowed.append(multiarray.scalar)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed.extend(
            getattr(dtypes, name)
            for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")
            if hasattr(dtypes, name)
        )
    return allowed


def _load_pickle(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        name = _unsafe_global(str(error))
        if name is not None:
            raise UnsafeCheckpointError(
                f"refusing to load {path.name}: it contains code, not just weights "
                f"(its pickle wants {name})",
                path=path,
                hint="only load checkpoints from people you trust; a safe copy can be made "
                "as .safetensors by whoever trusts it",
            ) from None
        raise WeightsError(
            "not a PyTorch checkpoint: the file is not readable pickle data",
            path=path,
            hint="expected a .pth/.pt/.ckpt saved by torch.save, or a .safetensors file",
        ) from None
    # The weights-only unpickler fails on garbage with whatever the bytes provoke (IndexError,
    # KeyError, EOFError, zip errors); all of them mean the same thing to the user.
    except Exception as error:
        if isinstance(error, FileNotFoundError):
            raise InputNotFoundError("model checkpoint not found", path=path) from None
        raise WeightsError(
            f"not a PyTorch checkpoint: torch.load could not read it ({_first_line(error)})",
            path=path,
            hint="expected a .pth/.pt/.ckpt saved by torch.save, or a .safetensors file",
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _load_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise WeightsError(
            f"not a readable .safetensors file ({_first_line(error)})",
            path=path,
        ) from None


def unwrap_state_dict(obj: object, path: Path) -> StateDict:
    """Find the tensors inside a checkpoint's container and strip wrapper prefixes."""
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"not a supported model checkpoint: it holds a {type(obj).__name__}, "
            "not a dict of tensors",
            path=path,
        )
    current: Mapping[Any, Any] = obj
    for _ in range(3):  # nested wrappers such as {"state_dict": {"params_ema": ...}}
        inner = next(
            (current[k] for k in _WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None
        )
        if inner is None and len(current) == 1:
            only = next(iter(current.values()))
            inner = only if isinstance(only, Mapping) else None
        if inner is None:
            break
        current = inner
    tensors: StateDict = {
        str(k): v for k, v in current.items() if isinstance(k, str) and isinstance(v, torch.Tensor)
    }
    if not tensors:
        keys = ", ".join(repr(k) for k in list(current)[:6])
        raise WeightsError(
            "not a supported model checkpoint: found no tensors "
            f"(top-level keys: {keys or 'none'})",
            path=path,
        )
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def read_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint's tensors without running any code from the file."""
    path = Path(path)
    _check_path(path)
    if path.suffix.lower() == ".safetensors":
        return unwrap_state_dict(_load_safetensors(path), path)
    return unwrap_state_dict(_load_pickle(path), path)


def detect_architecture(state: StateDict) -> DetectedArch | None:
    """An architecture of `ARCHS` in BasicSR layout whose keys match exactly, else None."""
    for arch in ARCHS:
        config = arch.detect(state)
        if config is None:
            continue
        found = DetectedArch(arch, config)
        try:
            expected = found.build().state_dict()
        except ValueError:
            continue
        if set(expected) == set(state) and all(
            tuple(expected[k].shape) == tuple(state[k].shape) for k in expected
        ):
            return found
    return None


def missing_tensors(state: StateDict) -> tuple[str, list[str]] | None:
    """(architecture, missing keys) when the file is a known network short of some tensors.

    Every tensor in the file must belong to the architecture with the right shape, and some
    of the architecture's are absent: a truncated save or a hand-edited file, which is worth
    naming rather than "not a known architecture".
    """
    candidates = [DetectedArch(arch, config) for arch in ARCHS for config in arch.candidates(state)]
    for found in candidates:
        try:
            expected = found.build().state_dict()
        except ValueError:
            continue
        if not set(state) < set(expected):
            continue
        if all(tuple(expected[k].shape) == tuple(state[k].shape) for k in state):
            return found.architecture, sorted(set(expected) - set(state))
    return None


def _describe_keys(state: StateDict) -> str:
    keys = sorted(state)
    sample = ", ".join(keys[:4])
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return f"{len(keys)} tensors ({sample}{more})"


def _count_params(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def _load_builtin(found: DetectedArch, state: StateDict, path: Path, name: str) -> LoadedModel:
    network = found.build()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"checkpoint does not fit {found.architecture}: {_first_line(error)}", path=path
        ) from None
    size_multiple = getattr(network, "size_multiple", 1)
    descriptor = ModelDescriptor(
        name=name,
        architecture=found.architecture,
        scale=found.scale,
        in_channels=int(found.kwargs["num_in_ch"]),
        out_channels=int(found.kwargs["num_out_ch"]),
        supports_half=True,
        supports_bfloat16=True,
        size_multiple=int(size_multiple),
        tiling="supported",
        params=_count_params(network),
        source=str(path),
        macs_per_pixel=found.macs_per_pixel,
    )
    return LoadedModel(network=network, descriptor=descriptor)


def import_spandrel() -> Any:
    """Import spandrel on demand; it pulls in torchvision, which many installs lack."""
    try:
        import spandrel
    except Exception as error:  # ImportError, or torchvision failing to load its operators
        raise WeightsError(
            f"loading community architectures needs spandrel, which cannot be imported "
            f"({_first_line(error)})",
            hint=SPANDREL_HINT,
        ) from None
    return spandrel


_TILING: dict[str, Tiling] = {
    "SUPPORTED": "supported",
    "DISCOURAGED": "discouraged",
    "INTERNAL": "internal",
}


def _load_spandrel(state: StateDict, path: Path, name: str) -> LoadedModel:
    try:
        spandrel = import_spandrel()
    except WeightsError as error:
        raise WeightsError(
            f"not {arch_names()} in BasicSR layout (found {_describe_keys(state)}); "
            f"{error.message}",
            path=path,
            hint=SPANDREL_HINT,
        ) from None
    try:
        loaded = spandrel.ModelLoader().load_from_state_dict(
            spandrel.canonicalize_state_dict(state)
        )
    except spandrel.UnsupportedModelError:
        raise WeightsError(
            f"not a supported model checkpoint: no known architecture matches "
            f"{_describe_keys(state)}",
            path=path,
        ) from None
    except (RuntimeError, ValueError, KeyError, AssertionError, IndexError, TypeError) as error:
        raise WeightsError(
            f"checkpoint looks like a known architecture but does not load: {_first_line(error)}",
            path=path,
        ) from None
    if not isinstance(loaded, spandrel.ImageModelDescriptor):
        raise WeightsError(
            f"{loaded.architecture.name} is an inpainting model; vsr runs image-to-image "
            "super-resolution and restoration models",
            path=path,
        )
    if loaded.purpose == "FaceSR":
        raise WeightsError(
            f"{loaded.architecture.name} restores aligned face crops, not whole frames",
            path=path,
        )
    if loaded.input_channels != 3 or loaded.output_channels != 3:
        raise WeightsError(
            f"expected a model with 3 input and 3 output channels (RGB), got "
            f"{loaded.input_channels} in and {loaded.output_channels} out",
            path=path,
        )
    network: nn.Module = loaded.model
    req = loaded.size_requirements
    descriptor = ModelDescriptor(
        name=name,
        architecture=str(loaded.architecture.name),
        scale=int(loaded.scale),
        in_channels=int(loaded.input_channels),
        out_channels=int(loaded.output_channels),
        supports_half=bool(loaded.supports_half),
        supports_bfloat16=bool(loaded.supports_bfloat16),
        size_multiple=int(req.multiple_of),
        tiling=_TILING.get(loaded.tiling.name, "supported"),
        params=_count_params(network),
        source=str(path),
    )
    return LoadedModel(
        network=network, descriptor=descriptor, min_size=int(req.minimum), square=bool(req.square)
    )


def load_checkpoint(path: str | Path, *, name: str | None = None) -> LoadedModel:
    """Read a checkpoint, detect its architecture and return the loaded network (on the CPU)."""
    path = Path(path)
    state = read_state_dict(path)
    name = name or path.stem
    found = detect_architecture(state)
    if found is not None:
        return _load_builtin(found, state, path, name)
    partial = missing_tensors(state)
    if partial is not None:
        architecture, missing = partial
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise WeightsError(
            f"looks like {architecture} but {len(missing)} tensor(s) are missing: "
            f"{', '.join(missing[:8])}{more}",
            path=path,
            hint="the file is incomplete or damaged; download or export it again",
        )
    return _load_spandrel(state, path, name)


def describe_checkpoint(path: str | Path) -> ModelDescriptor:
    return load_checkpoint(path).descriptor
