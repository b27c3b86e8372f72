"""The tiny AuraFlow and Lumina-Next pipelines of tests/pipelines_generic.py: each builder saves a diffusers folder
(model_index.json naming the pipeline, safetensors weights only, a tokenizer folder) that diffusers' own class loads
offline and runs 2 steps with, to an image of the asked size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipelines_generic import GENERIC_BUILDERS, GENERIC_RESOLUTION, PIPELINE_CLASSES, REQUIRED_CLASSES

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".msgpack", ".h5")


@pytest.mark.parametrize("pipeline_class", sorted(GENERIC_BUILDERS))
def test_builder_saves_a_folder_its_pipeline_class_loads_and_runs(
    pipeline_class: str, tmp_path: Path, one_torch_thread: None
) -> None:
    if pipeline_class not in PIPELINE_CLASSES:
        pytest.skip(f"this diffusers lacks one of {', '.join(REQUIRED_CLASSES[pipeline_class])}")
    import diffusers
    import torch
    from PIL import Image

    folder = GENERIC_BUILDERS[pipeline_class](tmp_path / "model")
    assert folder == tmp_path / "model"

    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class
    assert index["transformer"] == ["diffusers", REQUIRED_CLASSES[pipeline_class][1]]

    weights = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    assert weights, "no weight files saved"
    assert all(w.endswith(".safetensors") for w in weights), weights
    assert {w.split("/")[0] for w in weights} == {"transformer", "text_encoder", "vae"}

    assert (folder / "tokenizer").is_dir()
    assert (folder / "tokenizer" / "tokenizer.json").is_file()  # the built-in-code tokenizer loads back offline

    pipe = getattr(diffusers, pipeline_class).from_pretrained(folder, use_safetensors=True, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    for name, (_, cls) in ((k, v) for k, v in index.items() if not k.startswith("_")):
        assert type(getattr(pipe, name)).__name__ == cls, name
    side = GENERIC_RESOLUTION[pipeline_class]
    images = pipe("a red cat", num_inference_steps=2, height=side, width=side, guidance_scale=5.0,
                  generator=torch.Generator().manual_seed(0), output_type="pil").images
    assert len(images) == 1
    assert isinstance(images[0], Image.Image)
    assert images[0].size == (side, side)
    assert images[0].mode == "RGB"


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, one_torch_thread: None) -> None:
    if "LuminaPipeline" not in PIPELINE_CLASSES:
        pytest.skip("this diffusers lacks LuminaPipeline")
    import torch

    before = torch.random.get_rng_state()
    first, again, other = (GENERIC_BUILDERS["LuminaPipeline"](tmp_path / name, seed=seed)
                           for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left as it was
    file = Path("transformer") / "diffusion_pytorch_model.safetensors"
    assert (first / file).read_bytes() == (again / file).read_bytes()
    assert (first / file).read_bytes() != (other / file).read_bytes()
