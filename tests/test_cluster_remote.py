"""`vsr batch --cluster` with inputs and outputs at fsspec URLs (memory://, file://; no network).

The driver copies the inputs into the work folder and uploads the outputs when whole; here the
cluster is the local Ray of test_cluster.py and the storage fsspec's in-process memory://.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import check_one_error_line
from test_cluster import _assert_same, _clip, _jobs, local_ray  # noqa: F401  (a fixture)

from vsr.batch import run_batch
from vsr.cluster import remote

fsspec = pytest.importorskip("fsspec")

_ARGS = ["--model", "bicubic", "--scale", "2", "--codec", "ffv1", "--no-html", "--quiet"]


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    root = f"/vsr-test-{id(fs)}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_memory_urls_in_and_out_equal_local_files(
    tmp_path: Path, cli: Any, memory_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = memory_fs
    local = tmp_path / "in"
    _clip(local / "long.mp4", frames=60, gop=15)
    _clip(local / "short.mp4", frames=12, gop=6)
    for name in ("long.mp4", "short.mp4"):
        fs.put_file(str(local / name), f"{root}/in/{name}")
    run_batch(_jobs(local, tmp_path / "one"), output_dir=tmp_path / "one")
    monkeypatch.setenv(remote.WORK_ENV, str(tmp_path / "work"))
    puts: list[str] = []
    real_put = type(fs).put_file

    def watch(self: Any, lpath: str, rpath: str, **kw: Any) -> Any:
        puts.append(rpath)
        return real_put(self, lpath, rpath, **kw)

    monkeypatch.setattr(type(fs), "put_file", watch)
    out = f"memory://{root}/out"
    result = cli(
        "batch",
        f"memory://{root}/in",
        "-o",
        out,
        *_ARGS,
        "--cluster",
        "ray",
        "--chunk-seconds",
        "0.5",
    )
    assert result.code == 0, result.err
    for name in ("long.mp4", "short.mp4"):
        got = tmp_path / f"got-{name}"
        fs.get_file(f"{root}/out/{name}", str(got))
        _assert_same(tmp_path / "one" / name, got)
    report = json.loads(fs.cat_file(f"{root}/out/vsr-report.json"))
    assert report["summary"]["done"] == 2
    assert report["cluster"]["chunks"] == {
        str(next((tmp_path / "work" / "in").iterdir()) / "long.mp4"): 4
    }
    # Every object was written under a temporary name and moved to its final one.
    assert puts and all("/." in p and ".part-" in p for p in puts)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{root}/out", detail=False)) == [
        "long.mp4",
        "short.mp4",
        "vsr-report.json",
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_file_url_input_into_a_local_output(tmp_path: Path, cli: Any) -> None:
    src = _clip(tmp_path / "src" / "clip.mp4", frames=12, gop=6)
    run_batch(_jobs(src.parent, tmp_path / "one"), output_dir=tmp_path / "one")
    out = tmp_path / "out"
    result = cli("batch", src.as_uri(), "-o", out, *_ARGS, "--cluster", "ray")
    assert result.code == 0, result.err
    _assert_same(tmp_path / "one" / "clip.mp4", out / "clip.mp4")
    # The copy sits in the output folder's hidden work folder, for a rerun to find.
    copies = list((out / ".vsr-work" / "in").glob("*/clip.mp4"))
    assert len(copies) == 1 and copies[0].read_bytes() == src.read_bytes()


def test_a_url_without_fsspec_names_the_extra(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec -> ImportError
    result = cli("batch", "s3://bucket/a.mp4", "-o", tmp_path / "out", "--cluster", "ray")
    check_one_error_line(result, 2, 'pip install "vsr[fsspec]"')


def test_a_missing_url_is_one_error_line(tmp_path: Path, cli: Any, memory_fs: Any) -> None:
    _fs, root = memory_fs
    url = f"memory://{root}/nothing.mp4"
    result = cli("batch", url, "-o", tmp_path / "out", "--cluster", "ray")
    check_one_error_line(result, 2, url)
