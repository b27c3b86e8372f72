"""``ldmpick demo train / train-judge``: retrain the shipped demo family and the judge that measures it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ldmpick.cli.options import SeedOpt, ThreadsOpt, int_list
from ldmpick.cli.render import command_group, notice, print_json
from ldmpick.demo.training import DEMO_CHANNELS
from ldmpick.files.errors import UsageError
from ldmpick.files.output_paths import output_path

DEFAULT_CHANNELS = ",".join(str(c) for c in DEMO_CHANNELS)  # the shipped family's

app = command_group("The demo model family trained here on a procedural shapes world.")

TrainOutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", parser=output_path, metavar="<folder>",
    help="Required: the folder to write to (made if missing; never inside the installed package).")]


@app.command("train")
def demo_train_cmd(
    out: TrainOutOpt = None,
    channels: Annotated[str, typer.Option("--channels", help="Base channel counts of the UNets, comma-separated (multiples of 8).")] = DEFAULT_CHANNELS,
    seed: SeedOpt = 0,
    images: Annotated[int, typer.Option("--images", min=32, max=1_000_000, help="Number of world samples to train "
                                                                                 "on (at least one batch).")] = 16384,
    vae_steps: Annotated[int, typer.Option("--vae-steps", min=1, help="Optimizer steps of the autoencoder.")] = 1000,
    unet_steps: Annotated[int, typer.Option("--unet-steps", min=1, help="Optimizer steps of each UNet.")] = 8000,
    batch: Annotated[int, typer.Option("--batch", min=1, max=4096, help="UNet training batch.")] = 32,
    threads: ThreadsOpt = 1,
) -> None:
    """Train the VAE and one UNet per channel count on the demo world; write diffusers folders with training.json
    to the --out folder. The defaults reproduce the shipped family (demo-c8/c16/c80; its recipe and times are in
    each folder's training.json and in family_training.json). Resumable: rerun the same command after an
    interruption and it continues from the last checkpoint (every 250 steps); runs of different --channels into the
    same --out can go in parallel (they share one VAE, trained once)."""
    from ldmpick.demo.training import TrainingRecipe, train_family
    from ldmpick.files.output_paths import check_outside_package, check_output_folder

    if out is None:
        raise UsageError("give --out FOLDER: training writes there and never over the installed demo models "
                         "(scripts/ship_demo_family.sh puts a finished run into the package)")
    out = check_outside_package(check_output_folder(out))

    recipe = TrainingRecipe(seed=0 if seed is None else seed, n_images=images, vae_steps=vae_steps,
                            unet_steps=unet_steps, batch=batch, vae_batch=min(32, batch))
    report = train_family(out, channels=tuple(int_list(channels, "--channels", DEFAULT_CHANNELS)),
                          recipe=recipe, threads=1 if threads is None else threads, progress=notice)
    print_json({name: {"unet_params": facts["unet_params"], "steps": facts["recipe"]["unet_steps"],
                       "wall_s": facts["wall_s"], "final_loss_mean_last50": facts["final_loss_mean_last50"]}
                for name, facts in report["models"].items()})


@app.command("train-judge")
def demo_train_judge_cmd(
    out: TrainOutOpt = None,
    seed: SeedOpt = 1,
    images: Annotated[int, typer.Option("--images", min=128, max=1_000_000, help="Number of world samples to train "
                                                                                  "on (at least one batch, 128).")] = 8192,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = 1500,
    threads: ThreadsOpt = 1,
) -> None:
    """Train the world judge: the feature network of the demo FID and the attribute classifier of prompt accuracy.
    Writes world_judge.safetensors/.json to the --out folder (never over the installed judge, which every shipped
    FID was measured with); --seed is the world seed of the training images (not the UNets' seed)."""
    from ldmpick.calibration.image_quality import train_judge

    if out is None:
        raise UsageError("give --out FOLDER: the judge is written there and never over the installed one, which "
                         "measured every shipped FID and prompt accuracy")
    from ldmpick.files.output_paths import check_outside_package, check_output_file, check_output_folder

    out = check_outside_package(check_output_folder(out))
    for name in ("world_judge.safetensors", "world_judge.json") if out.is_dir() else ():
        check_output_file(out / name)  # a link, FIFO or device there: refused before training, not after
    out.mkdir(exist_ok=True)  # (the last level, as demo train and generate make it)
    facts = train_judge(out, seed=1 if seed is None else seed, n_images=images, steps=steps,
                        threads=1 if threads is None else threads, progress=notice)
    print_json(facts)
