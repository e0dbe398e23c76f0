"""Presets: shipped files, the user's folder, checking with suggestions, CLI overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsr.config import EncodeOptions, ModelOptions
from vsr.errors import ConfigError
from vsr.media.filters import FilterSpec
from vsr.models.registry import model_names
from vsr.presets import (
    Preset,
    list_presets,
    load_preset,
    merge,
    shipped_presets_dir,
    show_preset,
    user_presets_dir,
)

SHIPPED = {"anime", "anime-fast", "live-action", "archival-film", "vhs", "dvd-to-hd", "preview"}


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty XDG_CONFIG_HOME, so a developer's presets never leak in."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config / "vsr" / "presets"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped presets


def test_every_shipped_preset_is_listed_and_loads() -> None:
    infos = {info.name: info for info in list_presets()}
    assert set(infos) == SHIPPED
    for name, info in infos.items():
        assert info.builtin and info.shadows is None
        assert info.description, name
        assert info.path.parent == shipped_presets_dir()
        preset = load_preset(name)
        assert preset.name == name
        assert preset.source == info.path
        assert preset.model in model_names()
        assert isinstance(preset.model_options(), ModelOptions)
        assert isinstance(preset.encode_options(), EncodeOptions)
        assert isinstance(preset.filter_spec(), FilterSpec)


def test_shipped_presets_say_what_they_promise() -> None:
    vhs = load_preset("vhs")
    assert vhs.filters.deinterlace == "auto"
    assert vhs.filters.denoise != "off"
    assert vhs.temporal == "stabilize"
    assert vhs.filters.square_pixels

    dvd = load_preset("dvd-to-hd")
    assert dvd.height == 1080
    assert dvd.filters.square_pixels
    assert dvd.filters.deinterlace == "auto"

    preview = load_preset("preview")
    assert preview.duration is not None and 0 < preview.duration <= 30
    assert preview.encode.preset in ("ultrafast", "superfast", "veryfast")

    assert load_preset("anime").model.startswith("realesr-animevideov3")
    assert load_preset("anime-fast").scale == 2
    assert load_preset("live-action").model == "realesrgan-x4plus"
    assert load_preset("archival-film").filters.crop == "auto"


def test_known_models_are_models_of_the_registry() -> None:
    # Presets check names against the registry's sources, nothing less and nothing more.
    from vsr.models import zoo
    from vsr.temporal.processor import list_temporal_models

    registry = {"bicubic"} | {e.name for e in zoo.list_models()}
    registry |= {e.family for e in zoo.list_models()}
    registry |= {str(row["name"]) for row in list_temporal_models()}
    assert set(model_names()) == registry


def test_model_names_are_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", '[model]\nname = "RealESRGAN-x4plus"\n')
    assert load_preset(path).model == "realesrgan-x4plus"


def test_model_options_from_preset() -> None:
    options = load_preset("anime-fast").model_options(device="cpu", batch=2)
    assert options == ModelOptions(
        name="realesr-animevideov3",
        scale=2,
        tile=0,
        precision="auto",
        device="cpu",
        batch=2,
    )
    encode = load_preset("anime").encode_options()
    assert (encode.codec, encode.crf, encode.preset) == ("libx264", 16, "slow")
    assert dict(encode.options) == {"tune": "animation"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_show_round_trips_through_toml(name: str, tmp_path: Path) -> None:
    text = show_preset(name)
    assert text.startswith(f"# preset: {name}\n# source: ")
    assert str(shipped_presets_dir() / f"{name}.toml") in text
    again = load_preset(write(tmp_path / f"{name}.toml", text))
    original = load_preset(name)
    assert again == Preset(**{**original.__dict__, "source": again.source})


# --------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            '[filters]\ndenois = "nlmeans"\n',
            "unknown key 'filters.denois'",
            "did you mean 'denoise'?",
        ),
        ("[encoder]\ncrf = 18\n", "unknown key 'encoder'", "did you mean 'encode'?"),
        ('descripton = "x"\n', "unknown key 'descripton'", "did you mean 'description'?"),
        ('[filters]\ndenoise = "nlmean"\n', "expected filters.denoise one of", "'nlmeans'"),
        ('[encode]\ncrf = "18"\n', "expected encode.crf to be a number, got a string '18'", None),
        ("[encode]\ncrf = 70\n", "expected encode.crf at least 0 and at most 63, got 70", None),
        ('[encode]\npreset = "slwo"\n', "expected encode.preset one of", "did you mean 'slow'?"),
        ('[encode]\ncodec = "libx246"\n', "video encoder", "did you mean 'libx264'?"),
        ('[encode]\npix_fmt = "yuv420p11le"\n', "pixel format", "did you mean 'yuv420p1"),
        ("[encode]\noptions = 3\n", "expected encode.options to be a table", None),
        ('[model]\nname = "realesrgan-x4pluss"\n', "unknown model.name", "'realesrgan-x4plus'"),
        ("[model]\ntile = 8\n", 'expected model.tile "off", "auto" or a size', None),
        ('[model]\ntile = "atuo"\n', "expected model.tile", "did you mean 'auto'?"),
        ('[model]\nprecision = "fp8"\n', "expected model.precision one of auto, fp32", None),
        ('[model]\ntemporal = "stabilise"\n', "expected model.temporal", "'stabilize'"),
        ("[model]\nscale = 0\n", "expected model.scale above 0", None),
        ("[output]\nheight = 1081\n", "expected output.height to be even, got 1081", None),
        (
            "[filters]\nsquare_pixels = 1\n",
            "expected filters.square_pixels to be true or false",
            None,
        ),
        ('[filters]\ncrop = "letterbox"\n', "expected filters.crop", None),
        ("[filters]\ncrop = [704, 480]\n", "expected filters.crop", None),
        ("[filters]\ndenoise_strength = -1\n", "expected filters.denoise_strength above 0", None),
        ('model = "bicubic"\n', "expected [model] to be a table", None),
        ("duration = 0\n", "expected preset.duration above 0", None),
        ("[model\n", "not valid TOML", None),
    ],
)
def test_bad_preset_fails_naming_file_key_and_suggestion(
    tmp_path: Path, text: str, message: str, hint: str | None
) -> None:
    path = write(tmp_path / "mine.toml", text)
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    shown = str(err.value)
    assert str(path) in shown
    assert message in shown
    if hint is not None:
        assert hint in shown
    assert err.value.exit_code == 2


def test_unknown_preset_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'anmie'") as err:
        load_preset("anmie")
    assert "did you mean 'anime'?" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_preset("zzzz")
    assert "presets: anime, anime-fast" in str(err.value)


def test_missing_preset_file() -> None:
    with pytest.raises(ConfigError, match="preset file not found"):
        load_preset("/nonexistent/thing.toml")


def test_explicit_crop_and_checkpoint_path_next_to_the_preset(tmp_path: Path) -> None:
    (tmp_path / "net.safetensors").write_bytes(b"")
    path = write(
        tmp_path / "dvd.toml",
        '[model]\nname = "net.safetensors"\n[filters]\ncrop = [704, 480, 8, 0]\n',
    )
    preset = load_preset(path)
    assert preset.model == str(tmp_path / "net.safetensors")
    assert preset.filters.crop == (704, 480, 8, 0)
    # On the command line a relative path means the working directory, not the preset's.
    assert merge(preset, {"model": "net.safetensors"}).model == "net.safetensors"


# --------------------------------------------------------------------------- user presets


def test_user_presets_live_under_xdg_config_home(user_config: Path) -> None:
    assert user_presets_dir() == user_config
    write(
        user_config / "tapes.toml",
        'description = "my tapes"\nextends = "vhs"\n[encode]\ncrf = 22\n',
    )
    infos = {info.name: info for info in list_presets()}
    assert infos["tapes"].description == "my tapes"
    assert not infos["tapes"].builtin
    tapes = load_preset("tapes")
    assert tapes.encode.crf == 22
    # Everything else comes from the shipped vhs preset it extends.
    vhs = load_preset("vhs")
    assert tapes.filters == vhs.filters
    assert tapes.temporal == vhs.temporal
    assert tapes.source == user_config / "tapes.toml"


def test_user_preset_shadows_shipped_one(user_config: Path) -> None:
    mine = write(
        user_config / "anime.toml",
        'description = "my anime"\nextends = "anime"\n[model]\nscale = 2\n',
    )
    infos = {info.name: info for info in list_presets()}
    assert infos["anime"].path == mine
    assert not infos["anime"].builtin
    assert infos["anime"].shadows == shipped_presets_dir() / "anime.toml"
    preset = load_preset("anime")
    assert preset.scale == 2
    assert preset.description == "my anime"
    assert preset.encode.preset == "slow"  # from the shipped anime it extends
    text = show_preset("anime")
    assert f"# source: {mine}" in text
    assert "shadows the shipped preset" in text


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="in a circle"):
        load_preset(tmp_path / "a.toml")


def test_extends_unknown_preset(tmp_path: Path) -> None:
    path = write(tmp_path / "x.toml", 'extends = "vsh"\n')
    with pytest.raises(ConfigError, match="extends: unknown preset 'vsh'") as err:
        load_preset(path)
    assert "did you mean 'vhs'?" in str(err.value)


def test_broken_user_preset_does_not_break_the_list(user_config: Path) -> None:
    write(user_config / "broken.toml", "[model\n")
    infos = {info.name: info for info in list_presets()}
    assert infos["broken"].description.startswith("(cannot be read")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset("broken")


# --------------------------------------------------------------------------- overrides


def test_merge_cli_options_win_and_none_means_not_given() -> None:
    dvd = load_preset("dvd-to-hd")
    merged = merge(
        dvd,
        {
            "crf": 22,
            "height": 720,
            "crop": "704:480:8:0",
            "deinterlace": "tff",
            "scale": None,
            "model": None,
            "denoise": "atadenoise",
            "denoise_strength": 0.5,
            "tile": 256,
        },
    )
    assert merged.encode.crf == 22
    assert merged.height == 720
    assert merged.filters.crop == (704, 480, 8, 0)
    assert merged.filters.deinterlace == "tff"
    assert merged.filters.denoise == "atadenoise"
    assert merged.filters.denoise_strength == 0.5
    assert merged.tile == 256
    # Not given: the preset's values stand.
    assert merged.model == dvd.model
    assert merged.scale == dvd.scale
    assert merged.filters.square_pixels is True
    assert merged.encode.preset == dvd.encode.preset
    assert merged.encode.codec == dvd.encode.codec
    assert merge(dvd, {}) == dvd


def test_merge_encoder_options_by_key_and_codec_change() -> None:
    anime = load_preset("anime")
    merged = merge(anime, {"encoder_options": ["aq-mode=3"], "encoder_preset": "medium"})
    assert dict(merged.encode.options) == {"tune": "animation", "aq-mode": "3"}
    assert merged.encode.preset == "medium"
    # tune=animation and the x264 preset were written for libx264: a new codec drops them.
    hevc = merge(anime, {"codec": "libx265"})
    assert hevc.encode.codec == "libx265"
    assert hevc.encode.options == ()
    assert hevc.encode.preset is None
    assert hevc.encode.crf == anime.encode.crf


def test_merge_tile_auto_and_off() -> None:
    preset = load_preset("anime")
    assert merge(preset, {"tile": "off"}).tile is None
    assert merge(preset, {"tile": 0}).tile == 0
    assert merge(load_preset("preview"), {"duration": 3.5}).duration == 3.5


def test_merge_rejects_bad_and_unknown_options() -> None:
    preset = load_preset("anime")
    with pytest.raises(ConfigError, match=r"command line: expected encode\.crf at least 0"):
        merge(preset, {"crf": -3})
    with pytest.raises(ConfigError, match="unknown option 'denoize'") as err:
        merge(preset, {"denoize": "nlmeans"})
    assert "did you mean 'denoise'?" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'nlmeans'"):
        merge(preset, {"denoise": "nlmean"})
    with pytest.raises(ConfigError, match="--crop"):
        merge(preset, {"crop": "704:480"})
