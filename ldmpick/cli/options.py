"""Every option that more than one command takes, defined once: one spelling, one short flag, one help text and,
where a machine-wide default makes sense, one ``LDMPICK_*`` environment variable.

The alias fixes the flags, the type and the help; each command gives its own default with ``=`` (typer shows it).
Options that only one command has stay next to that command.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ldmpick.files.errors import UsageError
from ldmpick.files.output_paths import output_path
from ldmpick.models.samplers import SAMPLERS

# ---------------------------------------------------------------------------------------------- output

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", parser=output_path, metavar="<path>", help="Where to write: see the description above (what is written, and where by default).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace what is already there (a registered name, a local profile with the same id).")]

# ---------------------------------------------------------------------------------------------- what to run

ModelsOpt = Annotated[Optional[str], typer.Option(
    "--models", "-m", help="Comma-separated model names, local diffusers folders or cached hub ids; 'all': the "
                           "paper's family (where no default is shown: every model of the profile).")]
SamplersOpt = Annotated[Optional[str], typer.Option(
    "--samplers", help=f"Comma-separated sampler names ({', '.join(SAMPLERS)}; each model runs those that fit "
                       "it), or 'all' (where no default is shown: all).")]
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", help="Registered name, local diffusers folder or cached hub id (overrides the selector).")]
SamplerOpt = Annotated[Optional[str], typer.Option(
    "--sampler", help=f"{', '.join(list(SAMPLERS)[:-1])} or {list(SAMPLERS)[-1]}, as fits the model (overrides "
                      "the selector).")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Sampling steps (overrides the selector).")]
StepListOpt = Annotated[str, typer.Option("--steps", help="Step counts, comma-separated.")]
BudgetOpt = Annotated[Optional[str], typer.Option(
    "--budget", "-b", help="Latency per image batch: '2s', '1500ms', '0.5 s' (recommend --cost-model flops: cost "
                           "units, e.g. 3).")]
CostBudgetOpt = Annotated[Optional[str], typer.Option(
    "--budget", "-b", help="Per image batch; its unit says what it counts: seconds ('2s', '1500ms', '0.5 s'), dollars "
                           "('$0.002', at --price), joules ('50J': recommend, from a profile's NVML energy); "
                           "recommend --cost-model flops: cost units, e.g. 3.")]
PriceOpt = Annotated[Optional[str], typer.Option(
    "--price", envvar="LDMPICK_PRICE", metavar="<$/h>",
    help="The device's price, for a money budget ('$0.002'): dollars per hour such as '2.49/h' or '$2.49/h' (also "
         "/min, /s); ldmpick never guesses one.")]
ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", "-p", help="Profile id, name prefix or file (default: $LDMPICK_PROFILE, then the profile that "
                            "best covers the asked models and settings, preferring this device's).")]
LawOpt = Annotated[Optional[Path], typer.Option(
    "--law", help="Quality law file (default: your refit, else the shipped one).")]
PercentileOpt = Annotated[float, typer.Option(
    "--percentile", help="Plan on this percentile of the run's latency, built from the parts' measured spreads "
    "(90: about 1 run in 10 over the budget; 50: the median).")]
MetricOpt = Annotated[str, typer.Option(
    "--metric", help="The quality scale to rank on; a model is ranked only where that scale has data for it. "
    "fid (the paper's FID for its family, or your calibration's), clip (the paper's CLIP), prompt-acc (your "
    "calibration's prompt accuracy, e.g. the demo world), or a published scale: mjhq-fid, mjhq-clip, geneval, dpg, "
    "imagereward, coco-fid, coco-clip, coco5k-fid, coco5k-clip, coco10k-fid, laion6-fid, laion6-clip "
    "('ldmpick law --scales' lists them).")]

# ---------------------------------------------------------------------------------------------- how to run

DeviceOpt = Annotated[Optional[str], typer.Option(
    "--device", envvar="LDMPICK_DEVICE", help="cpu, cuda or cuda:N (default: the GPU if there is one).")]
DtypeOpt = Annotated[Optional[str], typer.Option(
    "--dtype", envvar="LDMPICK_DTYPE", help="fp16, bf16 or fp32 (default: fp16 on GPU, fp32 on CPU).")]
KnobsOpt = Annotated[Optional[str], typer.Option(
    "--knobs", metavar="auto|none|LIST", help="Knobs (caches, precision, compile, attention; docs/knobs.md): 'auto' "
    "(default) the knob variants the profile measured ('ldmpick profile --knobs'), 'none', or knob lists separated "
    "by ';' such as 'cache=taylorseer(interval=4,order=2,warmup=2,scope=blocks)'. A knob without quality data is "
    "listed as unmeasured with the command that measures it, never ranked.")]
ModeOpt = Annotated[Optional[str], typer.Option(
    "--mode", envvar="LDMPICK_MODE", help="Execution mode: eager, cudagraph or compile (profile: default cudagraph "
                                          "on GPU, eager on CPU; generate: default the profile's; recommend: the "
                                          "profile must have measured it).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", envvar="LDMPICK_THREADS", min=1, max=1024,
    help="torch CPU threads (where no default is shown: $OMP_NUM_THREADS, else one per physical core this process may "
         "use, fewer when other work keeps cores busy).")]
ResolutionOpt = Annotated[Optional[int], typer.Option(
    "--resolution", help="Image side in pixels (generate: default the model's native size; recommend: the profile "
                         "must have measured it).")]
BatchOpt = Annotated[Optional[int], typer.Option(
    "--batch", help="Images generated at once (recommend: the profile must have measured it).")]
CfgOpt = Annotated[Optional[bool], typer.Option(
    "--cfg/--no-cfg", help="Classifier-free guidance, which doubles the UNet batch (recommend: the profile must have "
                           "measured it).")]
GuidanceOpt = Annotated[Optional[float], typer.Option(
    "--guidance", help="Classifier-free guidance scale, 1 or less: off (default: generate, the scale the model's "
                       "quality was calibrated at, else 7.5; calibrate, 4 for the demo world, 7.5 with "
                       "--reference).")]
SeedOpt = Annotated[Optional[int], typer.Option(
    "--seed", help="Random seed, for repeatable runs (generate: image k of a prompt uses seed + k; random if not "
                   "given).")]
PromptsFileOpt = Annotated[Optional[Path], typer.Option(
    "--prompts-file", help="UTF-8 text file, one prompt per line (calibrate: with --reference).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its partial file.")]


# ---------------------------------------------------------------------------------------------- parsing helpers


def int_list(text: str, option: str, example: str = "1,2,4,8") -> list[int]:
    """A comma-separated list of integers, for ``option``; one-line usage errors."""
    shown = text if len(text) <= 40 else text[:40] + "..."
    items = text.split(",")
    if not text.strip():
        raise UsageError(f"{option} is empty; give integers like '{example}'")
    if len(items) > 1000 or any(not x.strip() for x in items):
        raise UsageError(f"{option} must be comma-separated integers like '{example}', got '{shown}'")
    try:
        return [int(x) for x in items]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated integers like '{example}', got '{shown}'") from None


def price_source(ctx: typer.Context) -> str:
    """Where --price came from, as messages name it: the command line or $LDMPICK_PRICE."""
    source = ctx.get_parameter_source("price")  # (typer may vendor click: compared by name)
    return "$LDMPICK_PRICE" if getattr(source, "name", None) == "ENVIRONMENT" else "--price"


def command_line() -> str:
    """The command as the user typed it, recorded in the files it writes."""
    return "ldmpick " + " ".join(shlex.quote(a) for a in sys.argv[1:])
