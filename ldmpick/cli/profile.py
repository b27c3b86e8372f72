"""``ldmpick profile``: measure this machine."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ldmpick.cli.options import (BatchOpt, CfgOpt, DeviceOpt, DtypeOpt, JsonOpt, ModeOpt, ModelsOpt, OutOpt,
                                 ResolutionOpt, ResumeOpt, SamplersOpt, ThreadsOpt, command_line)
from ldmpick.cli.profiles import render_profile
from ldmpick.cli.render import notice, print_json, progress_bar
from ldmpick.files.errors import UsageError


def profile_cmd(
    models: ModelsOpt = "all",
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    cfg: CfgOpt = True,
    mode: ModeOpt = None,
    samplers: SamplersOpt = "all",
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls before timing.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed calls per model (at most).")] = 20,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Time budget for each model's denoiser step (each fixed part gets a quarter, each sampler loop a tenth); at least 5 samples, or 2 of a step slower than the budget allows.")] = 20.0,
    threads: ThreadsOpt = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Measure the models round-robin in this many rounds and pool the samples (steadier on a drifting, shared machine).")] = 1,
    pipeline_call: Annotated[bool, typer.Option("--pipeline-call/--no-pipeline-call", help="For each model with weights, also time its own pipeline call end to end (what generate runs): warm at two step counts, and the first call of fresh processes.")] = True,
    call_steps: Annotated[str, typer.Option("--call-steps", metavar="A,B", help="The two step counts the pipeline call is timed at (the slope between them is the loop's true per-step cost).")] = "2,8",
    fresh_runs: Annotated[int, typer.Option("--fresh-runs", help="Fresh processes that time a first call per model with weights (the first image of a run, and the spread across runs); 0: none.")] = 5,
    knobs: Annotated[Optional[str], typer.Option("--knobs", metavar="SET;SET", help="Knob lists to measure on each model's denoiser after its plain step, separated by ';' (e.g. 'precision=bf16;cache=taylorseer(interval=4,order=2)'): full and cached steps of a fixed-schedule cache, a full step of an adaptive one, compile time apart. A list that does not apply to a model is skipped with a note. See docs/knobs.md.")] = None,
    out: OutOpt = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", metavar="ADDRESS", help="Profile on every distinct device type of a Ray cluster ('local', 'auto' or a Ray address), one profile per device, stored in the user profile folder. Needs: pip install \"ldmpick[cluster]\".")] = None,
    resume: ResumeOpt = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard an interrupted run of the same request and start over.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure per-step UNet latency of each model, the fixed costs and each sampler's overhead on this machine.

    The profile goes to --out, by default into the user profile folder (see 'ldmpick profiles list')."""
    from ldmpick.jobs import profile as profile_job
    from ldmpick.measurement import profiler as profiling

    req = profile_job.build_request(
        models="all" if models is None else models, device=device, dtype=dtype, resolution=resolution,
        batch=1 if batch is None else batch, cfg=True if cfg is None else cfg, mode=mode, samplers="all" if samplers is None else samplers,
        warmup=warmup, repeats=repeats, max_seconds=max_seconds, threads=threads, rounds=rounds,
        command=command_line(), pipeline_call=pipeline_call, call_steps=call_steps, fresh_runs=fresh_runs,
        knobs=knobs)
    if cluster is not None:
        if out is not None or resume or restart:
            raise UsageError("--cluster stores one profile per device type in the user profile folder; it takes "
                             "neither --out nor --resume/--restart")
        _profile_cluster(req, cluster, json_out)
        return
    output = profile_job.plan_output(out, req)
    with profile_job.claimed(output):
        resume_from = profile_job.partial_state(output, resume, restart)
        if resume_from is not None:
            profile_job.check_resume(req, resume_from)
            notice(f"resuming from '{output.partial}' ({len(resume_from.models)} model(s) already measured)")
        busy = profile_job.busy_warning()
        if busy:
            notice(busy)

        def kept() -> None:
            if output.partial.exists():
                notice(f"interrupted: completed measurements kept in '{output.partial}'; rerun with --resume "
                       "(the same command) to continue")

        with progress_bar("profiling", total=req.work_units(), on_interrupt=kept) as bar:
            def tick(label: str) -> None:
                bar.update(advance=1, description=f"measured {label}")

            def checkpoint(p: Any) -> None:
                profile_job.write_checkpoint(p, output)

            profile = profiling.run_profile(req, progress=tick, checkpoint=checkpoint, resume_from=resume_from)
        target = profile_job.save(profile, output)
    notice(f"profile written to '{target}' ({profile.wall_seconds:.1f} s)")
    render_profile(profile, json_out)
    for warning in profile_job.noisy_warnings(profile):
        notice(warning)


def _profile_cluster(req: Any, address: str, json_out: bool) -> None:
    from ldmpick.jobs import profile as profile_job

    def started(info: Any, groups: list[Any]) -> None:
        notice(f"Ray cluster '{address}': {info.describe()}; profiling {len(groups)} device type(s): "
               + ", ".join(f"{g.name} ({g.nodes} node(s))" for g in groups))

    done = []
    with progress_bar("profiling on the cluster") as bar:
        for group, profile, target in profile_job.profile_on_cluster(req, address, started):
            bar.update(advance=1, description=f"measured {group.name}")
            notice(f"profile of {group.name} written to '{target}' ({profile.wall_seconds:.1f} s)")
            done.append({"device": group.name, "nodes": group.nodes, "profile": profile.id, "path": str(target)})
    if json_out:
        print_json({"cluster": address, "profiles": done})
