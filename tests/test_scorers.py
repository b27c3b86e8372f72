"""Reference-free calibration scorers (issue 27, deliverable 2): tiny random CLIPModel checkpoints built here and
saved as safetensors (no download) load through transformers; CLIP score, PickScore-class preference and
self-agreement compute what they say; each measures on its own scale keyed by checkpoint, prompt set and
resolution; pickle-only and non-CLIP checkpoints are refused in one line; the quality table takes scorer rows
(schema ldmpick.quality/2) and still reads /1 tables. The tiny scorers' numbers mean nothing: plumbing only."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ldmpick.calibration.scorers import SCORERS, load_scorer, scorer_values
from ldmpick.calibration.scorers.clip_checkpoint import checkpoint_identity
from ldmpick.calibration.scorers.prompt_sets import load_prompt_set, prompt_set_from_file
from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.quality.scorer_scales import scorer_key, scorer_scale, scorer_value_range
from ldmpick.quality.table import QualityPoint, TABLE_SCHEMA, read_table, table_text


def build_tiny_clip(folder: Path, seed: int = 0, logit_scale: float | None = None) -> Path:
    """A random CLIPModel (text and vision towers of one 16-wide layer, 8-d projection, 16 px input) with the tiny
    byte-level CLIP tokenizer, saved with safetensors to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from tiny_pipeline import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    if logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(float(np.log(logit_scale)))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return Path(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("scorer") / "tiny-clip")


def _images(n: int, seed: int = 0, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_the_tiny_checkpoint_is_safetensors_only(tiny_clip):
    assert (tiny_clip / "model.safetensors").is_file()
    assert not [p for p in tiny_clip.iterdir() if p.suffix in (".bin", ".pt")]


def test_clip_score_is_100_times_the_clipped_cosine_of_image_and_prompt(tiny_clip):
    scorer = load_scorer("clip", str(tiny_clip))
    images, prompts = _images(6), ["a cat", "a red cube", "a cat", "peace", "42", "a dog"]
    feats = scorer.features(images, prompts)
    assert feats.shape == (6, 1)
    ck = scorer.checkpoint
    cos = (ck.image_embeddings(images) * ck.text_embeddings(prompts)).sum(axis=1)
    np.testing.assert_allclose(scorer_values("clip", feats), 100 * np.maximum(cos, 0), rtol=1e-6, atol=1e-6)
    assert ((feats >= 0) & (feats <= 100)).all()
    # the embeddings are unit length, and the same prompt gets the same embedding whatever its batch
    np.testing.assert_allclose(np.linalg.norm(ck.image_embeddings(images), axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(ck.text_embeddings(["a cat"])[0], ck.text_embeddings(prompts)[2], rtol=1e-5,
                               atol=1e-6)
    # an image of another prompt scores differently: the score reads the prompt
    assert not np.allclose(scorer.features(images, ["a cat"] * 6), scorer.features(images, ["peace"] * 6))


def test_preference_score_is_the_checkpoints_logit_scale_times_the_cosine(tmp_path):
    folder = build_tiny_clip(tmp_path / "pick", seed=1, logit_scale=50.0)
    pick, clip = load_scorer("pickscore", str(folder)), load_scorer("clip", str(folder))
    images, prompts = _images(5, 2), ["a cat"] * 5
    assert pick.checkpoint.logit_scale == pytest.approx(50.0, rel=1e-5)
    cos = (pick.checkpoint.image_embeddings(images) * pick.checkpoint.text_embeddings(prompts)).sum(axis=1)
    np.testing.assert_allclose(scorer_values("pickscore", pick.features(images, prompts)), 50.0 * cos, rtol=1e-5)
    both = np.maximum(cos, 0) > 0
    np.testing.assert_allclose(clip.features(images, prompts)[both, 0] / 100 * 50,
                               pick.features(images, prompts)[both, 0], rtol=1e-5)


def test_self_agreement_is_one_at_the_reference_and_lower_for_other_images(tiny_clip):
    scorer = load_scorer("self-agreement", str(tiny_clip))
    ref = scorer.features(_images(4, 0), ["a cat"] * 4)
    other = scorer.features(_images(4, 1), ["a cat"] * 4)
    np.testing.assert_allclose(scorer_values("self-agreement", ref, ref), 1.0, atol=1e-6)
    agree = scorer_values("self-agreement", other, ref)
    assert (agree <= 1.0).all() and (agree < 0.9999).all()
    with pytest.raises(ValueError, match="reference"):
        scorer_values("self-agreement", other, None)


def test_preprocessing_follows_the_checkpoints_preprocessor_config(tiny_clip, tmp_path):
    import json

    folder = tmp_path / "pre"
    shutil.copytree(tiny_clip, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 16, "width": 16}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    ck = load_scorer("clip", str(folder)).checkpoint
    assert (ck.image_size, ck.mean, ck.std) == (16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    px = ck.pixel_values(np.full((1, 40, 20, 3), 255, np.uint8))  # a tall image: shorter side to 16, centre crop
    assert tuple(px.shape) == (1, 3, 16, 16)
    np.testing.assert_allclose(px.numpy(), (1.0 - 0.5) / 0.25, rtol=1e-4)


def test_the_checkpoint_is_named_by_its_weights(tiny_clip, tmp_path):
    slug, sha = checkpoint_identity(str(tiny_clip))
    assert slug == f"tiny-clip-{sha[:8]}" and len(sha) == 64
    copy = tmp_path / "tiny-clip"
    shutil.copytree(tiny_clip, copy)
    assert checkpoint_identity(str(copy)) == (slug, sha)  # the same weights elsewhere: the same scale
    other = build_tiny_clip(tmp_path / "x" / "tiny-clip", seed=5)
    assert checkpoint_identity(str(other))[0] != slug  # other weights under the same folder name: another scale


def test_a_pickle_only_scorer_is_refused_in_one_line(tiny_clip, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(LdmpickError, match="only pickle-based weights") as err:
        load_scorer("clip", str(folder))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    ("no-config", "has no config.json"),
    ("not-clip", "is not a CLIP model"),
    ("no-tokenizer", "has no tokenizer"),
    ("no-weights", "has no model.safetensors"),
])
def test_a_folder_that_is_no_clip_checkpoint_is_refused_in_one_line(tiny_clip, tmp_path, change, message):
    import json

    folder = tmp_path / "bad"
    shutil.copytree(tiny_clip, folder)
    if change == "no-config":
        (folder / "config.json").unlink()
    elif change == "not-clip":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif change == "no-tokenizer":
        for p in folder.glob("tokenizer*"):
            p.unlink()
    else:
        (folder / "model.safetensors").unlink()
    with pytest.raises(LdmpickError, match=message) as err:
        load_scorer("clip", str(folder))
    assert "\n" not in str(err.value)


def test_a_hub_id_not_in_the_cache_and_an_unknown_scorer_are_one_line_errors(tiny_clip):
    with pytest.raises(LdmpickError, match="not in the local Hugging Face cache"):
        load_scorer("clip", "nobody/no-such-clip-checkpoint")
    with pytest.raises(UsageError, match="unknown scorer 'clipp'"):
        load_scorer("clipp", str(tiny_clip))
    assert set(SCORERS) == {"clip", "pickscore", "self-agreement"}


def test_the_world_judge_embeds_images_for_self_agreement_only(tiny_clip):
    from ldmpick.calibration.scorers import checkpoint_identity

    scorer = load_scorer("self-agreement", "world-judge")
    images = _images(3, 0, size=32)
    feats = scorer.features(images, ["x"] * 3)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(scorer_values("self-agreement", feats, feats), 1.0, atol=1e-9)
    slug, sha = checkpoint_identity("world-judge")
    assert slug == f"world-judge-{sha[:8]}" and scorer.checkpoint.slug == slug
    with pytest.raises(UsageError, match="has no text tower"):
        load_scorer("clip", "world-judge")


def test_the_demo_world_prompt_set_is_a_demo_fid_calibrations_prompts():
    from ldmpick.calibration.images import PROMPT_SEED_OFFSET
    from ldmpick.demo.world import dataset

    ps = load_prompt_set("demo-world-256")
    assert list(ps.prompts) == dataset(PROMPT_SEED_OFFSET, 256)[1]  # what calibrate --samples 256 --seed 0 uses


def test_scorer_scales_are_keyed_by_checkpoint_prompt_set_and_resolution():
    key = scorer_key("clip-score", "clip-vit-large-patch14-0a1b2c3d", "parti-48", 1024)
    assert key == "clip-score:clip-vit-large-patch14-0a1b2c3d:parti-48:1024px"
    scale = scorer_scale(key)
    assert scale is not None and scale.key == key and not scale.lower_is_better and not scale.published
    assert "parti-48" in scale.description and "1024 px" in scale.description and "clip" in scale.description
    assert scorer_value_range(key) == (0.0, 100.0)
    agree = scorer_key("self-agreement", "c-0a1b2c3d", "parti-48", 512, 50)
    assert agree.endswith(":512px:ref50") and scorer_value_range(agree) == (-1.0, 1.0)
    assert scorer_value_range(scorer_key("pickscore", "p-1", "parti-48", 1024)) == (-100.0, 100.0)
    # never one of the paper's or the published scales, and nothing that only looks like a key
    for other in ("clip", "imagereward", "fid", "clip-score", "clip-score:c:p:1024", "self-agreement:c:p:64px",
                  "clip-score:c:p:64px:ref4", "pickscore:c/d:p:64px", "clip-score:c:p:0px", None, 3):
        assert scorer_scale(other) is None, other  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        scorer_key("clip-score", "bad name", "parti-48", 64)


def _row(metric: str, value: float) -> QualityPoint:
    return QualityPoint("demo-c8", 72724, "ddim", 4, 4.0, 32, metric, value, 48, "parti-48", "calibrated:parti-48",
                        "calibrated:x")


def test_the_quality_table_holds_scorer_rows_on_their_own_scales_and_reads_schema_1():
    key = scorer_key("pickscore", "p-0a1b2c3d", "parti-48", 32)
    text = table_text([_row("fid", 30.0), _row(key, -3.5)], "mine")
    assert text.startswith(f"# schema: {TABLE_SCHEMA}\n") and TABLE_SCHEMA == "ldmpick.quality/2"
    rows = read_table(text, "t")
    assert [(r.metric, r.value) for r in rows] == [("fid", 30.0), (key, -3.5)]
    v1 = text.replace(TABLE_SCHEMA, "ldmpick.quality/1", 1)
    assert len(read_table(v1, "t")) == 2  # a /1 table reads as it is
    with pytest.raises(UsageError, match="schema 'ldmpick.quality/9'"):
        read_table(text.replace(TABLE_SCHEMA, "ldmpick.quality/9", 1), "t")
    with pytest.raises(UsageError, match="not a plausible"):
        read_table(table_text([_row(key, 101.0)], "x"), "t")
    with pytest.raises(UsageError, match=">= -100"):
        read_table(table_text([_row(key, -101.0)], "x"), "t")
    with pytest.raises(UsageError, match="unknown metric 'clip-score:c'"):
        read_table(table_text([_row("clip-score:c", 1.0)], "x"), "t")


def test_the_shipped_prompt_set_is_48_partiprompts_in_12_categories_with_its_licence(tmp_path):
    ps = load_prompt_set()
    assert ps.name == "parti-48" and len(ps.prompts) == 48 and len(set(ps.prompts)) == 48
    assert sorted({c: ps.categories.count(c) for c in ps.categories}.values()) == [4] * 12
    folder = Path(ps.source).parent
    header = Path(ps.source).read_text(encoding="utf-8").split("\nprompt\t")[0]
    assert "Apache License 2.0" in header and "google-research/parti" in header and "commit" in header
    assert "Apache License" in (folder / "LICENSE-PartiPrompts").read_text(encoding="utf-8")
    assert ps.for_samples(50)[48:] == list(ps.prompts[:2])  # image i gets prompt i mod 48
    mine = tmp_path / "my prompts.txt"
    mine.write_text("a cat\n\na dog\n", encoding="utf-8")
    own = prompt_set_from_file(mine)
    assert own.prompts == ("a cat", "a dog") and own.name.startswith("my-prompts-") and len(own.name) == 19
    with pytest.raises(UsageError, match="unknown prompt set"):
        load_prompt_set("parti-4800")
