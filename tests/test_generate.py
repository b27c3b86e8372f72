"""`ldmpick generate` end to end on CPU with a tiny random diffusers pipeline (built once per module, seconds)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ldmpick.cli import app
from ldmpick.generation.runner import GenerateRequest, generate, load_pipeline
from ldmpick.generation.outputs import read_png_text
from tiny_pipeline import TINY_DEFAULT_RESOLUTION, build_tiny_pipeline

runner = CliRunner()
RES = "32"  # tiny model: multiples of 4; 32 px -> 16x16 latents


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def pipe(tiny: Path):
    return load_pipeline(tiny, "cpu", "fp32")


def gen(tiny: Path, out: Path, *extra: str, prompt: str = "a cat on the moon"):
    return runner.invoke(app, ["generate", prompt, "--model", str(tiny), "--sampler", "euler", "--steps", "3",
                               "--resolution", RES, "--seed", "42", "--out", str(out), *extra])


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: "), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------- core


@pytest.mark.parametrize("sampler", ["ddim", "euler-a", "dpmpp-2m"])
def test_own_loop_gives_the_same_images_as_the_diffusers_pipeline_call(tiny, pipe, sampler):
    import torch

    from ldmpick.models.samplers import make_scheduler

    res = generate(GenerateRequest(model=str(tiny), prompts=["a red cat"], sampler=sampler, steps=4, seed=3, n=2,
                                   negative_prompt="blurry", resolution=32), pipeline=pipe)
    pipe.scheduler = make_scheduler(sampler, dict(pipe.scheduler.config))
    ref = pipe("a red cat", negative_prompt="blurry", num_inference_steps=4, num_images_per_prompt=2, height=32,
               width=32, guidance_scale=7.5, generator=[torch.Generator("cpu").manual_seed(s) for s in (3, 4)],
               output_type="pil").images
    mine = res.prompts[0].images
    assert [im.size for im in mine] == [(32, 32), (32, 32)]
    for a, b in zip(mine, ref):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(mine[0]), np.asarray(mine[1]))  # two seeds, two images


@pytest.mark.parametrize(("sampler", "steps", "cls", "evals"), [
    ("ddim", 3, "DDIMScheduler", 3),
    ("unipc", 5, "UniPCMultistepScheduler", 5),
    ("heun", 3, "HeunDiscreteScheduler", 5),  # second-order: two UNet evaluations per step but the last
])
def test_the_requested_scheduler_and_step_count_are_really_used(tiny, pipe, sampler, steps, cls, evals):
    calls: list[tuple[int, ...]] = []
    hook = pipe.unet.register_forward_hook(lambda mod, args, out: calls.append(tuple(args[0].shape)))
    ticks: list[tuple[int, int]] = []
    try:
        res = generate(GenerateRequest(model=str(tiny), prompts=["a", "b"], sampler=sampler, steps=steps, seed=0,
                                       resolution=32), pipeline=pipe, progress=lambda d, t: ticks.append((d, t)))
    finally:
        hook.remove()
    assert type(pipe.scheduler).__name__ == cls == res.scheduler_class
    assert res.unet_evals == evals and len(calls) == 2 * evals  # two prompts
    assert calls[0] == (2, 4, 16, 16)  # guidance doubles the batch; 32 px / VAE factor 2
    assert ticks == [(i + 1, 2 * evals) for i in range(2 * evals)]
    for p in res.prompts:
        assert p.times.denoise_ms > 0 and p.times.text_encoder_ms > 0 and p.times.vae_decode_ms > 0


def test_default_resolution_is_the_models_native_size(tiny, pipe):
    res = generate(GenerateRequest(model=str(tiny), prompts=["x"], sampler="euler", steps=1, guidance=1.0),
                   pipeline=pipe)
    assert res.prompts[0].images[0].size == (TINY_DEFAULT_RESOLUTION,) * 2
    assert res.settings.cfg is False


# ---------------------------------------------------------------------------------------------- CLI


def test_generate_writes_pngs_with_metadata_and_a_sidecar(tiny, tmp_path):
    out = tmp_path / "imgs"  # missing, parent exists: created
    r = gen(tiny, out, "--n", "2", "--negative-prompt", "blurry", "--guidance", "5", "--json")
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["0001-a-cat-on-the-moon-s42.png", "0002-a-cat-on-the-moon-s43.png"]
    for f, seed in zip(files, (42, 43)):
        with Image.open(f) as im:
            assert im.size == (32, 32) and im.format == "PNG"
        text = read_png_text(f)
        assert text["prompt"] == "a cat on the moon" and text["negative_prompt"] == "blurry"
        assert text["model"] == "tiny-sd" and text["sampler"] == "euler" and text["steps"] == "3"
        assert text["scheduler"] == "EulerDiscreteScheduler"
        assert text["seed"] == str(seed) and text["guidance"] == "5.0" and text["resolution"] == "32x32"
        assert float(text["measured_latency_ms"]) > 0
        assert text["predicted_fid"] == "null" and text["predicted_latency_ms"] == "null"  # no profile of tiny-sd
        assert text["ldmpick_version"]
    sidecar = json.loads((out / "0001-run.json").read_text())
    assert sidecar["schema"] == "ldmpick.generation/1"
    assert sidecar["settings"]["sampler"] == "euler" and sidecar["settings"]["steps"] == 3
    assert sidecar["scheduler_class"] == "EulerDiscreteScheduler" and sidecar["unet_evals"] == 3
    assert [i["file"] for i in sidecar["images"]] == [f.name for f in files]
    assert set(sidecar["prompts"][0]["measured"]) >= {"text_encoder_ms", "denoise_ms", "vae_decode_ms", "total_ms"}
    printed = json.loads(r.stdout)
    assert printed["images"] == sidecar["images"] and printed["sidecar"] == str(out / "0001-run.json")
    assert printed["schema"] == sidecar["schema"]  # what --json prints is the sidecar's document, versioned alike


def test_same_seed_same_image_and_no_overwrite(tiny, tmp_path):
    out = tmp_path / "o"
    assert gen(tiny, out).exit_code == 0
    first = out / "0001-a-cat-on-the-moon-s42.png"
    before = first.read_bytes()
    assert gen(tiny, out).exit_code == 0
    assert gen(tiny, out, "--seed", "7").exit_code == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["0001-a-cat-on-the-moon-s42.png", "0001-run.json", "0002-a-cat-on-the-moon-s42.png",
                     "0002-run.json", "0003-a-cat-on-the-moon-s7.png", "0003-run.json"]
    assert first.read_bytes() == before
    assert np.array_equal(pixels(first), pixels(out / "0002-a-cat-on-the-moon-s42.png"))
    assert not np.array_equal(pixels(first), pixels(out / "0003-a-cat-on-the-moon-s7.png"))


def test_image_k_of_a_batch_is_reproducible_alone_from_its_seed(tiny, tmp_path):
    assert gen(tiny, tmp_path / "a", "--n", "2").exit_code == 0
    assert gen(tiny, tmp_path / "b", "--seed", "43").exit_code == 0
    batch = pixels(tmp_path / "a" / "0002-a-cat-on-the-moon-s43.png")
    alone = pixels(tmp_path / "b" / "0001-a-cat-on-the-moon-s43.png")
    assert np.abs(batch - alone).max() <= 2  # batched vs single matmuls may round differently


def test_prompts_file(tiny, tmp_path):
    pf = tmp_path / "prompts.txt"
    pf.write_text("a dog\n\n  a red boat  \n", encoding="utf-8")
    r = runner.invoke(app, ["generate", "--prompts-file", str(pf), "--model", str(tiny), "--sampler", "ddim",
                            "--steps", "2", "--resolution", RES, "--seed", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["0001-a-dog-s1.png", "0002-a-red-boat-s1.png"]
    sidecar = json.loads((tmp_path / "o" / "0001-run.json").read_text())
    assert [p["prompt"] for p in sidecar["prompts"]] == ["a dog", "a red boat"]


def test_registered_name_generates(tiny, tmp_path):
    assert runner.invoke(app, ["models", "add", "mine", str(tiny)]).exit_code == 0
    r = runner.invoke(app, ["generate", "x", "--model", "mine", "--sampler", "ddim", "--steps", "1",
                            "--resolution", RES, "--seed", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert read_png_text(tmp_path / "o" / "0001-x-s0.png")["model"] == "mine"


# ---------------------------------------------------------------------------------------------- errors


def test_missing_model(tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", "ldm-39x", "--sampler", "ddim", "--steps", "2",
                            "--out", str(tmp_path)])
    one_line_error(r, "unknown model 'ldm-39x'; did you mean 'ldm-39m'?")


def test_family_model_without_weights(tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", "ldm-39m", "--sampler", "ddim", "--steps", "2",
                            "--out", str(tmp_path)])
    one_line_error(r, "model 'ldm-39m' has no weights")


def test_unknown_sampler_suggests_the_closest_name(tiny, tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", str(tiny), "--sampler", "eulr", "--steps", "2",
                            "--out", str(tmp_path)])
    one_line_error(r, "unknown sampler 'eulr'; did you mean 'euler'? (valid: ddim, ddpm, dpmpp-2m, euler, euler-a, "
                      "flow-dpmpp-2m, flow-euler, flow-unipc, heun, lcm, scm, unipc)")


def test_hub_id_not_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    r = runner.invoke(app, ["generate", "x", "--model", "someone/not-cached", "--sampler", "ddim", "--steps", "2",
                            "--out", str(tmp_path)])
    one_line_error(r, "hub model 'someone/not-cached' is not in the local Hugging Face cache; unset HF_HUB_OFFLINE "
                      "and run 'hf download someone/not-cached'")  # (huggingface_hub 1.0 has no huggingface-cli)


def test_pickle_only_weights_are_refused(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny, folder)
    st = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(st), folder / "unet" / "diffusion_pytorch_model.bin")
    st.unlink()
    r = runner.invoke(app, ["generate", "x", "--model", str(folder), "--sampler", "ddim", "--steps", "2",
                            "--out", str(tmp_path / "o")])
    one_line_error(r, "has only pickle-based weights (.bin/.pt/.ckpt); ldmpick loads safetensors only")
    assert not (tmp_path / "o").exists()  # failed before anything was written


@pytest.mark.parametrize(("extra", "message"), [
    (["--resolution", "31"], "--resolution 31 is not a multiple of 8 (the sd pipeline takes multiples of 8); "
                             "try 24 or 32"),
    (["--resolution", "0"], "--resolution 0 is out of range (8..4096 pixels)"),
    (["--steps", "0"], "--steps must be between 1 and 1000"),
    (["--n", "0"], "--n must be between 1 and 64"),
    (["--dtype", "fp8"], "unknown dtype 'fp8'"),
    (["--dtype", "fp16", "--device", "cpu"], "fp16 on the CPU is not supported"),
    (["--mode", "cudagraph", "--device", "cpu"], "mode 'cudagraph' needs a CUDA device"),
    (["--mode", "jit"], "unknown execution mode 'jit'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_options_are_one_line_errors(tiny, tmp_path, extra, message):
    one_line_error(gen(tiny, tmp_path / "o", *extra), message)


def test_device_cuda_without_a_gpu(tiny, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    one_line_error(gen(tiny, tmp_path / "o", "--device", "cuda"),
                   "--device cuda: no CUDA GPU is available here; use --device cpu")


def test_prompt_sources(tiny, tmp_path):
    base = ["generate", "--model", str(tiny), "--sampler", "ddim", "--steps", "1", "--out", str(tmp_path / "o")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    one_line_error(runner.invoke(app, base + ["--prompts-file", str(empty)]), f"--prompts-file '{empty}' has no prompts")
    one_line_error(runner.invoke(app, base + ["--prompts-file", str(latin1)]),
                   f"--prompts-file '{latin1}' is not UTF-8 text (bad byte at offset 3)")
    one_line_error(runner.invoke(app, base + ["--prompts-file", str(tmp_path / "nope.txt")]), "does not exist")
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)
    for special in ("/dev/zero", str(fifo)):  # once read until memory ran out, or hung
        one_line_error(runner.invoke(app, base + ["--prompts-file", special]), "is not a regular file")
    one_line_error(runner.invoke(app, base + ["x", "--prompts-file", str(empty)]), "give PROMPT or --prompts-file, not both")
    one_line_error(runner.invoke(app, base), "no prompt given; pass PROMPT or --prompts-file")


def test_needs_a_budget_or_all_three_overrides(tiny, tmp_path):
    r = runner.invoke(app, ["generate", "x", "--model", str(tiny), "--out", str(tmp_path)])
    one_line_error(r, "give --budget, or --model and --steps (and --sampler, else the model's own scheduler)")
    one_line_error(runner.invoke(app, ["generate", "x", "--budget", "fast"]),
                   "budget 'fast' is not a number with an optional unit")


def test_bad_output_folders(tiny, tmp_path):
    one_line_error(gen(tiny, tmp_path / "missing" / "deeper"), "does not exist (ldmpick creates only the last level)")
    (tmp_path / "file").write_text("")
    one_line_error(gen(tiny, tmp_path / "file"), "is a file, not a folder")


# ---------------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cudagraph_images_equal_eager_images_within_fp16_tolerance(tiny):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pipe = load_pipeline(tiny, "cuda", "fp16")
    results = {}
    for mode in ("eager", "cudagraph"):
        res = generate(GenerateRequest(model=str(tiny), prompts=["a cat", "a dog"], sampler="dpmpp-2m", steps=6,
                                       seed=5, n=2, resolution=32, device="cuda", dtype="fp16", mode=mode),
                       pipeline=pipe)
        results[mode] = [np.asarray(im).astype(int) for p in res.prompts for im in p.images]
    for a, b in zip(results["eager"], results["cudagraph"]):
        assert np.abs(a - b).max() <= 3, np.abs(a - b).max()


# ---------------------------------------------------------------------------------------------- prediction


def test_prediction_from_a_profile_and_the_budget_warning(tiny, tmp_path):
    prof = tmp_path / "tiny.json"
    r = runner.invoke(app, ["profile", "--models", str(tiny), "--device", "cpu", "--resolution", RES, "--samplers",
                            "euler", "--warmup", "1", "--repeats", "3", "--max-seconds", "1", "--out", str(prof)])
    assert r.exit_code == 0, r.output
    r = gen(tiny, tmp_path / "o", "--profile", str(prof), "--budget", "1ms", "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    pred = record["prediction"]
    assert pred["budget_ms"] == 1.0 and pred["total_ms"] > 0
    # the parts plus what the model's own measured pipeline call adds to them (the profile timed the call)
    assert pred["basis"] == "pipeline call (warm)"
    assert pred["total_ms"] == pytest.approx(pred["text_encoder_ms"] + pred["denoise_ms"] + pred["vae_decode_ms"]
                                             + pred["pipeline_call_ms"], abs=0.01)
    text = read_png_text(tmp_path / "o" / "0001-a-cat-on-the-moon-s42.png")
    assert float(text["predicted_latency_ms"]) == pytest.approx(pred["total_ms"], abs=0.01)
    measured = record["prompts"][0]["measured"]["latency_ms"]  # what a budget counts: prompt to written images
    assert measured >= record["prompts"][0]["measured"]["call_ms"] >= record["prompts"][0]["measured"]["total_ms"]
    assert f"warning: budget exceeded: 1 of 1 prompt batch(es) took longer than 1 ms (slowest {measured:.0f} ms)" in r.stderr
    # a run that differs from what the profile measured is flagged
    r = gen(tiny, tmp_path / "o", "--profile", str(prof), "--n", "2")
    assert r.exit_code == 0, r.output
    assert "warning: the profile measured batch 1 (this run: 2); the prediction may be off" in r.stderr
    assert "measured / predicted" in r.stdout and "denoising loop" in r.stdout


def test_budget_selects_among_models_with_weights(tiny, tmp_path):
    """A profile with the paper's 39M (no weights) and a registered tiny checkpoint: --budget picks the checkpoint,
    says that the best size has no weights, and the run really uses the selected sampler and steps."""
    assert runner.invoke(app, ["models", "add", "tiny-sd", str(tiny)]).exit_code == 0
    prof = tmp_path / "mixed.json"
    r = runner.invoke(app, ["profile", "--models", "tiny-sd,ldm-39m", "--device", "cpu", "--resolution", RES,
                            "--samplers", "ddim,dpmpp-2m", "--warmup", "1", "--repeats", "3", "--max-seconds", "1",
                            "--out", str(prof)])
    assert r.exit_code == 0, r.output
    # without quality data tiny-sd cannot be ranked; a declared anchor (a published FID of it) gives it some
    r = runner.invoke(app, ["generate", "a cat", "--budget", "30s", "--profile", str(prof), "--resolution", RES,
                            "--out", str(tmp_path / "o")])
    one_line_error(r, "no quality data on this scale (FID)")
    from ldmpick.quality.table import user_table_path

    user_table_path().parent.mkdir(parents=True, exist_ok=True)
    user_table_path().write_text("model,unet_params,sampler,steps,guidance,resolution,metric,value,num_samples,"
                                 "dataset,series,source\n"
                                 "tiny-sd,,ddim,50,7.5,512,fid,30.0,30000,mine,anchor:test,anchor:test\n")
    assert runner.invoke(app, ["fit"]).exit_code == 0
    r = runner.invoke(app, ["generate", "a cat", "--budget", "30s", "--profile", str(prof), "--resolution", RES,
                            "--seed", "1", "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    chosen = record["selection"]
    assert chosen["model"] == "tiny-sd" and chosen["sampler"] in ("ddim", "dpmpp-2m") and 1 <= chosen["steps"] <= 100
    assert record["settings"]["sampler"] == chosen["sampler"] and record["settings"]["steps"] == chosen["steps"]
    assert "selected tiny-sd" in r.stderr
    # --steps fixed, the rest selected
    r = runner.invoke(app, ["generate", "a cat", "--budget", "30s", "--steps", "2", "--profile", str(prof),
                            "--resolution", RES, "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["selection"]["steps"] == 2
    # a budget nothing fits
    r = runner.invoke(app, ["generate", "a cat", "--budget", "1ms", "--profile", str(prof), "--resolution", RES,
                            "--out", str(tmp_path / "o")])
    one_line_error(r, "below the fastest possible configuration")
