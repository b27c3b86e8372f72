"""Build ldmpick/data/published_quality.csv from the reference table of published results.

    python scripts/build_published_quality.py [--reference PATH] [--out PATH]

Every value, citation and protocol string is copied from ``real_models.csv`` (nothing is retyped): this script only
chooses the scale of each row (metric x data set x protocol family), splits its ``eval_protocol`` into columns
(steps, sampler, guidance, resolution, sample count), and names the ldmpick catalogue model the row is about (by the
catalogue's ``reference_name``, which is the reference table's ``model``). Rows whose metric is not a quality scale
(parameter counts, relative CLIP drops, ODE path lengths, IS) are left out and counted in the file's header.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldmpick.quality.table import PUBLISHED_COLUMNS, PUBLISHED_SCHEMA  # noqa: E402

DEFAULT_REFERENCE = next((d / "shared" / "reference" / "real_models" / "real_models.csv"
                          for d in (ROOT.parent, ROOT.parent.parent) if (d / "shared" / "reference").is_dir()),
                         ROOT.parent / "shared" / "reference" / "real_models" / "real_models.csv")
# the step sweeps and acceleration rows of flow-matching and few-step families (read its .md for what compares)
DEFAULT_STEPS_REFERENCE = DEFAULT_REFERENCE.with_name("quality_steps_accel.csv")

# Rows of quality_steps_accel.csv that are a step sweep on one protocol (its .md, "Which numbers may be compared"):
# (source prefix, accepted accelerations, metric) -> ldmpick scale. The FoCa DrawBench table (cache-dit's own
# DrawBench table uses another CLIP model: never mixed, left out), RAS's SD3-Medium baseline (its COCO FIDs are at
# 1024 px with an unstated sample count: a scale of their own). SANA-Sprint Table 2 is imported from real_models.csv
# (v4 of the paper); caching and quantization rows belong to the knobs issue and are left out here.
FOCA = "arXiv:2508.16211 (FoCa)"
RAS = "arXiv:2502.10389 (RAS"
STEP_SWEEPS: dict[tuple[str, str], str] = {
    (FOCA, "ImageReward"): "drawbench-imagereward",
    (FOCA, "CLIP score"): "drawbench-clip",
    (RAS, "FID"): "ras-coco-fid",
    (RAS, "CLIP score"): "ras-coco-clip",
}
SWEEP_ACCELERATIONS = ("none (baseline)", "none (reduced steps)", "reduced steps")
# what quality_steps_accel.csv holds that real_models.csv already has (kept from real_models.csv, v4 of the paper);
# its transcription differs for SANA-Sprint 1.6B (MJHQ FID 7.59 / 6.76 / 6.66 at 1 / 2 / 4 steps against v4's
# 7.69 / 6.50 / 6.54; GenEval 0.74 against 0.76 at 1 step): said in the header, v4 kept
ALREADY_IMPORTED = "arXiv:2503.09641 (SANA-Sprint)"
# reference names of models whose configs the catalogue does not have yet, with the name ldmpick ranks them by
# (a profile of them can be ranked; 'law --model' knows them from this table)
NOT_YET_IN_CATALOGUE = {"SD3.5-Large-Turbo": "sd3.5-large-turbo"}

# (metric in the reference, data set in the reference) -> ldmpick scale key (ldmpick.quality.law.SCALES)
SCALE_OF: dict[tuple[str, str], str] = {
    ("FID", "MJHQ-30K"): "mjhq-fid",
    ("CLIP_score (x100)", "MJHQ-30K"): "mjhq-clip",
    ("GenEval_overall", "GenEval"): "geneval",
    ("DPG_overall", "DPG-Bench"): "dpg",
    ("ImageReward", "ImageReward benchmark (100 prompts per paper)"): "imagereward",
    ("FID", "MS-COCO val2014 30K prompts (zero-shot, 256px)"): "coco-fid",
    ("CLIP_score (ViT-g/14, cosine)", "MS-COCO val2014 30K prompts (zero-shot, 256px)"): "coco-clip",
    ("FID", "MS-COCO 2017 val 5K (zero-shot)"): "coco5k-fid",
    ("CLIP_score (ViT-g-14, cosine)", "MS-COCO 2017 val 5K (zero-shot)"): "coco5k-clip",
    ("FID", "MS-COCO 10K (zero-shot)"): "coco10k-fid",
}
for _sampler in ("LCM", "DDIM", "DPM-Solver++", "Guided-Distill"):
    SCALE_OF[(f"FID [{_sampler}]", "LAION-Aesthetics-6+ (LCM eval)")] = "laion6-fid"
    SCALE_OF[(f"CLIP_score x100 [{_sampler}]", "LAION-Aesthetics-6+ (LCM eval)")] = "laion6-clip"

# the reference's sampler spellings -> ldmpick sampler names; anything else is kept, lower-cased (a sampler ldmpick
# does not run: its rows are data for that sampler only), and "default"/unstated becomes empty (not stated)
SAMPLER_OF = {"ddim": "ddim", "dpm-solver++": "dpmpp-2m", "lcm": "lcm", "scm": "scm",
              "flow-dpm-solver": "flow-dpmpp-2m", "pndmscheduler (hub default)": "pndm",
              "flowmatch euler (default)": "flow-euler", "rflow euler": "flow-euler",
              # ADD Tab.2 says "DPM Solver" (Lu et al. 2022): taken as the DPM-Solver ldmpick runs, dpmpp-2m
              "dpm-solver": "dpmpp-2m"}
UNSTATED = {"", "default", "-", "?", "unverified"}


def protocol_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            out.setdefault(key.strip(), value.strip())
    return out


def leading_number(text: str) -> str:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)(?:\s|$|\()", text or "")
    return m.group(1) if m else ""


def sampler_name(row: dict[str, str], proto: dict[str, str]) -> str:
    bracket = re.search(r"\[(.+)\]", row["metric"])
    text = bracket.group(1) if bracket else proto.get("sampler", "")
    text = text.split(";")[0].strip()
    key = text.lower()
    if key in UNSTATED:
        return ""
    if key in SAMPLER_OF:
        return SAMPLER_OF[key]
    first = key.split(" (")[0].split()[0] if key.split() else key
    return SAMPLER_OF.get(first, first)


def catalogue_names() -> dict[str, str]:
    """reference model name -> ldmpick catalogue name."""
    data = json.loads((ROOT / "ldmpick" / "data" / "models" / "catalogue.json").read_text(encoding="utf-8"))
    names = {entry["reference_name"]: name for name, entry in data["models"].items() if entry.get("reference_name")}
    return {**NOT_YET_IN_CATALOGUE, **names}


def source_url(text: str) -> str:
    """'arXiv:2508.16211 (FoCa) as reproduced in ...' -> its arXiv address (the text stays in the protocol)."""
    m = re.match(r"arXiv:(\d{4}\.\d{4,5})", text)
    return f"https://arxiv.org/abs/{m.group(1)}" if m else text


def sweep_rows(reference: Path, names: dict[str, str], skipped: dict[str, int]) -> list[dict[str, str]]:
    """The step-sweep rows of ``quality_steps_accel.csv`` (``STEP_SWEEPS``), one series per model, source and
    metric; ``reference_row`` is prefixed with the file's name."""
    text = reference.read_text(encoding="utf-8")
    out = []
    for i, r in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        scale = next((sc for (src, metric), sc in STEP_SWEEPS.items()
                      if r["source"].startswith(src) and r["metric"] == metric), None)
        accel = r["acceleration"]
        if r["source"].startswith(ALREADY_IMPORTED):
            skipped["SANA-Sprint rows already imported from real_models.csv"] = (
                skipped.get("SANA-Sprint rows already imported from real_models.csv", 0) + 1)
            continue
        if scale is None or not accel.startswith(SWEEP_ACCELERATIONS) or not leading_number(r["steps"]):
            why = "quality_steps_accel: " + (accel.split(":")[0].split(" (")[0] if scale else r["metric"])
            skipped[why] = skipped.get(why, 0) + 1
            continue
        reference_model = r["model"]
        sampler = sampler_name({"metric": ""}, {"sampler": r["sampler"]})
        resolution = (re.match(r"\d+", r["resolution"]) or [""])[0]  # "1024x1024 (assumed default)"
        series = " | ".join(x for x in (reference_model, f"{r['source'].split(' (')[0]} baseline",
                                        sampler or "sampler not stated", resolution) if x)
        out.append({
            "scale": scale, "model": names.get(reference_model, ""), "reference_model": reference_model,
            "metric": r["metric"], "dataset": r["dataset"], "value": r["value"], "steps": leading_number(r["steps"]),
            "steps_stated": "yes", "sampler": sampler, "guidance": leading_number(r["guidance"]),
            "resolution": resolution, "num_samples": "", "series": series,
            "protocol": (f"source={r['source']}; steps={r['steps']}; sampler={r['sampler']}; cfg={r['guidance']}; "
                         f"gen_res={r['resolution']}; acceleration={accel}; table={r['table']}; note={r['notes']}"),
            "source": source_url(r["source"]), "reference_row": f"quality_steps_accel.csv:{i}",
        })
    return out


def build(reference: Path, steps_reference: Path | None = None) -> tuple[str, dict[str, int]]:
    names = catalogue_names()
    text = reference.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    out_rows: list[dict[str, str]] = []
    skipped: dict[str, int] = {}
    for i, r in enumerate(rows, start=2):
        scale = SCALE_OF.get((r["metric"], r["dataset"]))
        try:
            float(r["value"])
        except ValueError:
            scale = None
        if scale is None:
            skipped[r["metric"]] = skipped.get(r["metric"], 0) + 1
            continue
        proto = protocol_fields(r["eval_protocol"])
        steps = leading_number(proto.get("steps", ""))
        steps_stated = "yes" if steps else "no"
        if not steps:  # not stated by the source: the pipeline default, flagged (steps_stated=no)
            steps = leading_number(r["default_steps"])
        if not steps:
            skipped["no step count at all"] = skipped.get("no step count at all", 0) + 1
            continue
        note = proto.get("note", "").split(";")[0].strip()
        sampler = sampler_name(r, proto)
        series = " | ".join(x for x in (r["model"], note or r["source_url"], sampler or "sampler not stated",
                                        proto.get("gen_res", ""), proto.get("prec", "")) if x)
        out_rows.append({
            "scale": scale, "model": names.get(r["model"], ""), "reference_model": r["model"],
            "metric": r["metric"], "dataset": r["dataset"], "value": r["value"],
            "steps": steps, "steps_stated": steps_stated, "sampler": sampler,
            "guidance": leading_number(proto.get("cfg", "")), "resolution": leading_number(proto.get("gen_res", "")),
            "num_samples": leading_number(proto.get("n", "")), "series": series,
            "protocol": r["eval_protocol"], "source": r["source_url"], "reference_row": str(i),
        })
    if steps_reference is not None:
        out_rows += sweep_rows(steps_reference, names, skipped)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PUBLISHED_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(out_rows)
    return buf.getvalue(), skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--steps-reference", type=Path, default=DEFAULT_STEPS_REFERENCE,
                    help="quality_steps_accel.csv: the flow and few-step sweeps")
    ap.add_argument("--out", type=Path, default=ROOT / "ldmpick" / "data" / "published_quality.csv")
    args = ap.parse_args()
    body, skipped = build(args.reference, args.steps_reference)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    left_out = ", ".join(f"{k} x{v}" for k, v in sorted(skipped.items()))
    header = (
        f"# schema: {PUBLISHED_SCHEMA}\n"
        "# Published quality of released text-to-image models, one row per (model, metric, step count), each with its\n"
        "# citation (source) and the reference's full protocol string (protocol). Copied, not retyped, from\n"
        "# shared/reference/real_models/real_models.csv (row number in reference_row; see its NOTES.md for caveats)\n"
        "# and the step sweeps of shared/reference/real_models/quality_steps_accel.csv (reference_row\n"
        "# 'quality_steps_accel.csv:N'; its .md says which numbers compare): FLUX.1-dev's DrawBench ImageReward and\n"
        "# CLIP at 50/30/17/11 steps (FoCa table), SD3-Medium's COCO FID and CLIP at 7/5/4 steps (RAS). Its SANA-Sprint\n"
        "# Table 2 rows are the real_models.csv ones (paper v4); its transcription differs for SANA-Sprint 1.6B (MJHQ\n"
        "# FID 7.59/6.76/6.66 at 1/2/4 steps against 7.69/6.50/6.54; GenEval 0.74 against 0.76 at 1 step): v4 kept.\n"
        f"# command: python scripts/build_published_quality.py  (ldmpick commit {commit or 'unknown'})\n"
        f"# date: {datetime.now(timezone.utc).strftime('%Y-%m-%d')}\n"
        "# scale: ldmpick's name for metric x data set x protocol (values on different scales are never compared).\n"
        "# model: the ldmpick catalogue model (empty: not in the catalogue; the row still counts for interval checks);\n"
        f"# {', '.join(NOT_YET_IN_CATALOGUE.values())}: named although the catalogue has no configs for it yet.\n"
        "# steps_stated=no: the source does not state the step count; steps holds the pipeline default, flagged.\n"
        "# sampler: ldmpick's sampler name where the source states one ldmpick runs; empty = not stated.\n"
        f"# left out (not a quality scale ldmpick ranks on): {left_out}\n"
    )
    args.out.write_text(header + body, encoding="utf-8")
    print(f"wrote {args.out} ({body.count(chr(10)) - 1} rows)")


if __name__ == "__main__":
    main()
