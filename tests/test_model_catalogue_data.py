"""The built-in catalogue of real released models (ldmpick/data/models/): configs only, no weights.

For every entry the denoiser is built on torch's meta device from its shipped config (no memory, no download)
and its parameter count is compared with the published size recorded in catalogue.json. Parameters only:
diffusers keeps the fixed sin-cos position tables of PixArt/SD3 as buffers, which are not counted.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from ldmpick.models.families import FAMILIES

CATALOGUE_DIR = Path(str(files("ldmpick.data").joinpath("models")))
CATALOGUE = json.loads((CATALOGUE_DIR / "catalogue.json").read_text())
MODELS: dict[str, dict] = CATALOGUE["models"]

NAMES = ["sd-1.5", "sd-2.1-base", "bk-sdm-base", "bk-sdm-small", "bk-sdm-tiny", "sdxl-base", "ssd-1b", "vega",
         "sdxl-turbo", "pixart-sigma", "sd3-medium", "sd3.5-medium", "sd3.5-large", "sana-0.6b", "sana-1.6b",
         "sana-sprint-0.6b", "sana-sprint-1.6b", "flux-schnell", "flux-dev",
         # the 2026 families (issue 25)
         "flux.2-dev", "flux.2-klein-4b", "flux.2-klein-9b", "chroma1-hd", "hidream-i1-full", "hidream-i1-dev",
         "hidream-i1-fast", "lumina-image-2.0", "cogview4-6b", "qwen-image", "z-image-turbo"]
FEW_STEP = {"sdxl-turbo", "sana-sprint-0.6b", "sana-sprint-1.6b", "flux-schnell", "flux.2-klein-4b", "flux.2-klein-9b",
            "z-image-turbo"}
GUIDANCE_DISTILLED = {"flux-dev", "flux-schnell", "sana-sprint-0.6b", "sana-sprint-1.6b", "flux.2-dev",
                      "flux.2-klein-4b", "flux.2-klein-9b", "hidream-i1-dev", "hidream-i1-fast"}
# model_index entries that are not networks with a config.json (tokenizers, image processors, the SD safety checker).
NOT_SHIPPED = ("tokenizer", "feature_extractor", "safety_checker", "image_encoder")

TOLERANCE = 0.02
# Entries whose shipped config cannot land within 2% of the published number. Not fudged: each is an expected
# failure of the 2% check (strict, so a fix shows up) and test_outliers_are_explained checks the stated reason.
OUTSIDE_2PCT = {
    "bk-sdm-tiny": "BK-SDM rounds sizes up: the authors' own config counts 0.3234B, published '0.33B' (-2.005%)",
    "ssd-1b": "reconstructed U-Net counts 1.3313B vs the 2-digit '1.3B' of the paper abstract (+2.41%)",
    "sd3.5-medium": "the published 2.47B includes the 226.5M pos-embed table diffusers keeps as a buffer (-9.2%)",
    "flux.2-klein-4b": "the published '4B' is the nominal size of the release table; the config counts 3.876B (-3.1%)",
    "cogview4-6b": "the published '6B' is the README's nominal size; the transcribed config counts 6.369B (+6.2%)",
    "qwen-image": "the published '20B' is the card's nominal size; the transcribed config counts 20.430B (+2.15%)",
    "z-image-turbo": "the published '6B' is the card's nominal size; the transcribed config counts 6.155B (+2.6%)",
}
# for the rounding explanations: the unit of the last published digit
PUBLISHED_RESOLUTION = {"bk-sdm-tiny": 0.01e9, "ssd-1b": 0.1e9, "flux.2-klein-4b": 1e9, "cogview4-6b": 1e9,
                        "qwen-image": 1e9, "z-image-turbo": 1e9}

_BUILT: dict[str, tuple[str, int, int]] = {}


def build_denoiser(name: str) -> tuple[str, int, int]:
    """(class built, parameter count, pos-embed buffer count) of the entry's denoiser, built on the meta device."""
    if name not in _BUILT:
        import diffusers
        import torch

        entry = MODELS[name]
        cfg = json.loads((CATALOGUE_DIR / entry["folder"] / entry["denoiser"] / "config.json").read_text())
        cls = getattr(diffusers, cfg["_class_name"])
        with torch.device("meta"):
            model = cls.from_config(cfg)
        params = sum(p.numel() for p in model.parameters())
        pos = sum(b.numel() for n, b in model.named_buffers() if "pos_embed" in n)
        _BUILT[name] = (type(model).__name__, params, pos)
    return _BUILT[name]


def test_catalogue_schema():
    assert CATALOGUE["schema"] == "ldmpick.catalogue/1"
    prov = CATALOGUE["provenance"]
    for key in ("source", "date", "method"):
        assert isinstance(prov[key], str) and prov[key].strip(), key
    assert list(MODELS) == NAMES
    for name, e in MODELS.items():
        assert e["folder"] == name
        assert isinstance(e["hub_id"], str) and e["hub_id"].count("/") == 1, name
        assert e["family"] in FAMILIES, name
        assert e["denoiser"] in {"unet", "transformer"}, name
        assert isinstance(e["published_denoiser_params"], int) and e["published_denoiser_params"] > 10**8, name
        assert isinstance(e["published_source"], str) and e["published_source"].strip(), name
        assert isinstance(e["distilled"], bool) and isinstance(e["guidance_distilled"], bool), name
        assert isinstance(e["default_steps"], int) and e["default_steps"] >= 1, name
        assert isinstance(e["default_guidance"], float) and e["default_guidance"] >= 0.0, name
        assert isinstance(e["native_resolution"], int) and e["native_resolution"] in (512, 768, 1024), name
    assert {n for n, e in MODELS.items() if e["distilled"]} == FEW_STEP
    assert {n for n, e in MODELS.items() if e["guidance_distilled"]} == GUIDANCE_DISTILLED
    # few-step models default to few steps; the others to a normal sampler budget
    assert all((MODELS[n]["default_steps"] <= 9) == (n in FEW_STEP) for n in NAMES)  # Z-Image-Turbo: 9 (8 NFE)


@pytest.mark.parametrize("name", NAMES)
def test_folder_is_a_complete_config_only_pipeline(name: str):
    import diffusers

    entry = MODELS[name]
    folder = CATALOGUE_DIR / entry["folder"]
    assert folder.is_dir(), folder
    assert sorted({p.suffix for p in folder.rglob("*") if p.is_file()}) == [".json"], "config only: JSON files, no weights"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"].endswith("Pipeline")
    provenance = json.loads((folder / "PROVENANCE.json").read_text())
    components = {k: v for k, v in index.items()
                  if not k.startswith("_") and isinstance(v, list) and v[0] is not None and not k.startswith(NOT_SHIPPED)}
    assert entry["denoiser"] in components
    assert components["scheduler"][0] == "diffusers"
    for comp, (library, class_name) in components.items():
        path = folder / comp / ("scheduler_config.json" if comp == "scheduler" else "config.json")
        assert path.is_file(), f"{name}: model_index names {comp} but {path.relative_to(CATALOGUE_DIR)} is missing"
        cfg = json.loads(path.read_text())
        if library == "diffusers":
            assert cfg["_class_name"] == class_name, (comp, cfg["_class_name"], class_name)
        else:
            # the class model_index names is the config's architecture, or its bare decoder (Z-Image-Turbo loads
            # its Qwen3ForCausalLM config as Qwen3Model: the same weights without the LM head)
            bare = [a.replace("ForCausalLM", "Model") for a in cfg["architectures"]]
            assert library == "transformers" and class_name in cfg["architectures"] + bare, (comp, class_name)
        assert comp in provenance and provenance[comp]["source"], f"{name}: no provenance for {comp}"
    scheduler_cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    getattr(diffusers, scheduler_cfg["_class_name"]).from_config(scheduler_cfg)


def _within_2pct(name: str) -> None:
    _, params, _ = build_denoiser(name)
    published = MODELS[name]["published_denoiser_params"]
    rel = params / published - 1.0
    assert abs(rel) <= TOLERANCE, f"{name}: {params:,} parameters vs published {published:,} ({rel:+.2%})"


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=OUTSIDE_2PCT[n])) if n in OUTSIDE_2PCT else n
    for n in NAMES
])
def test_denoiser_parameters_match_published_size(name: str):
    _within_2pct(name)


def test_outliers_are_explained():
    assert set(OUTSIDE_2PCT) <= set(MODELS)
    for name in OUTSIDE_2PCT:
        assert MODELS[name].get("notes"), f"{name}: catalogue.json should say why it is outside 2%"
    # sd3.5-medium: the published figure counts the pos-embed table; with it the count is within 2%
    _, params, pos = build_denoiser("sd3.5-medium")
    assert pos > 0 and abs((params + pos) / MODELS["sd3.5-medium"]["published_denoiser_params"] - 1.0) <= TOLERANCE
    # rounded figures: the count is within one unit of the last published digit
    for name, unit in PUBLISHED_RESOLUTION.items():
        _, params, _ = build_denoiser(name)
        assert abs(params - MODELS[name]["published_denoiser_params"]) <= unit, name


def test_sana_sprint_configs_are_the_sprint_variant():
    for size, base in (("0.6b", "sana-0.6b"), ("1.6b", "sana-1.6b")):
        folder = CATALOGUE_DIR / f"sana-sprint-{size}"
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == "SanaSprintPipeline" and index["scheduler"] == ["diffusers", "SCMScheduler"]
        sprint = json.loads((folder / "transformer" / "config.json").read_text())
        teacher = json.loads((CATALOGUE_DIR / base / "transformer" / "config.json").read_text())
        assert sprint["_class_name"] == "SanaTransformer2DModel"
        assert sprint["guidance_embeds"] is True and sprint["qk_norm"] == "rms_norm_across_heads"
        shape_keys = ("num_layers", "num_attention_heads", "attention_head_dim", "num_cross_attention_heads",
                      "cross_attention_head_dim", "cross_attention_dim", "caption_channels", "in_channels", "mlp_ratio")
        assert {k: sprint[k] for k in shape_keys} == {k: teacher[k] for k in shape_keys}
        # the Sprint network is its Sana size plus QK norms and a guidance embedder: a little larger
        assert 0 < build_denoiser(f"sana-sprint-{size}")[1] - build_denoiser(base)[1] < 0.01 * build_denoiser(base)[1]


def test_the_shipped_parameter_counts_match_a_fresh_count_of_every_built_in_model():
    """models list reads built-in counts from ldmpick/data/param_counts.json instead of building every model; the file
    must say what building them says (rebuild it with scripts/build_param_counts.py when a config changes)."""
    from ldmpick.models.catalogue import builtin_param_counts
    from ldmpick.models.families.base import ParamCountCache
    from ldmpick.files.reader import read_json_file

    shipped = read_json_file(ParamCountCache.shipped_path(), "parameter-count cache")
    assert shipped["schema"] == "ldmpick.param-counts/1" and shipped["provenance"]["command"]
    assert shipped["counts"] == builtin_param_counts()


def test_a_registered_model_is_counted_once_then_read_from_the_user_cache(tmp_path, monkeypatch):
    from conftest import write_config_folder

    from ldmpick.models.catalogue import resolve_model
    from ldmpick.models.families import base

    folder = write_config_folder(tmp_path, "cached-model", c=8)
    first = resolve_model(str(folder)).unet_params
    assert base.ParamCountCache.user_path().exists()
    base._count_params.cache_clear()
    monkeypatch.setattr(base, "_count_params", lambda *a: (_ for _ in ()).throw(AssertionError("counted again")))
    assert resolve_model(str(folder)).unet_params == first
