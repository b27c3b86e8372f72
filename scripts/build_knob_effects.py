"""Build ldmpick/data/knob_effects.csv from the reference table of published results under acceleration.

    python scripts/build_knob_effects.py [--reference PATH] [--out PATH]

Every value, citation and protocol string is copied from ``quality_steps_accel.csv`` (nothing is retyped). A row
becomes an *effect*: a published quality value of an accelerated run (a cache method, a quantization) as a change
against that source's own baseline -- the row of the same source, table, model, metric, data set and step count
whose acceleration is ``none`` -- so that no value is ever compared across protocols. Each effect names the
published method as the source writes it and its explicit mapping to a diffusers (or torchao) config ldmpick's
knobs apply (``mapping``: ``approximate`` with what differs, or ``none`` when no config corresponds: FoCa, TeaCache,
ToCa, DBCache, SVDQuant, ...). Rows without a baseline in their own table, reduced-step and step-distillation rows
(the quality law's business, not a knob's) and similarity-to-baseline metrics (LPIPS / PSNR against the 16-bit
model's images, which have no baseline row to subtract) are left out and counted in the file's header.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldmpick.knobs import parse_knob
from ldmpick.knobs.cache import KIND as CACHE
from ldmpick.knobs.effects import COLUMNS, SCHEMA

DEFAULT_REFERENCE = next((d / "shared" / "reference" / "real_models" / "quality_steps_accel.csv"
                          for d in (ROOT.parent, ROOT.parent.parent) if (d / "shared" / "reference").is_dir()),
                         ROOT.parent / "shared" / "reference" / "real_models" / "quality_steps_accel.csv")

# (reference model, variant) -> ldmpick catalogue model (checked against the catalogue's reference_name)
CATALOGUE_OF = {("FLUX.1-dev", "12B"): "flux-dev", ("FLUX.1-schnell", "12B"): "flux-schnell"}
# (source prefix, table) -> a short protocol key, part of each scale's name (values of different keys never meet)
PROTOCOL_OF = [
    ("arXiv:2508.16211 (FoCa)", "FoCa FLUX table", "foca"),
    ("github.com/vipshop/cache-dit bench/README.md", "DrawBench FLUX.1-dev table", "cache-dit"),
    ("github.com/vipshop/cache-dit bench/README.md", "Qwen-Image-Lightning DrawBench table", "cache-dit-qwen"),
    ("arXiv:2411.05007 (SVDQuant)", "Table 1", "svdquant"),
]
# (protocol key, metric) -> the quality table's own scale for the same protocol (ldmpick.quality.scales.SCALES), so
# that a knob's effect and the plain configurations' step sweep of that table are on one scale
QUALITY_SCALES = {("foca", "ImageReward"): "drawbench-imagereward", ("foca", "CLIP score"): "drawbench-clip"}
SIMILARITY_METRICS = ("LPIPS", "PSNR")  # measured against the baseline's own images: no baseline row
NOT_KNOBS = ("reduced steps", "step distillation")
LOWER_IS_BETTER = ("FID",)
FOCA_TAYLORSEER = re.compile(r"TaylorSeer \(N=(\d+),O=(\d+)\)")
NO_CONFIG = {  # published method (prefix) -> why no diffusers / torchao config corresponds
    "FoCa": "FoCa (arXiv 2508.16211) is not in diffusers 0.42",
    "TeaCache": "diffusers has no TeaCache (FBCache is another skip criterion, not the same method)",
    "FORA": "FORA reuses attention and MLP features at a fixed interval; diffusers has no such config",
    "ToCa": "ToCa (token-wise caching) is not in diffusers",
    "DuCa": "DuCa is not in diffusers",
    "Delta-DiT": "Delta-DiT is not in diffusers",
    "Chipmunk": "Chipmunk (sparse attention) is not in diffusers",
    "DBCache": "cache-dit's DBCache, a cache-dit config, not a diffusers one (cache-dit is not a knob yet)",
    "quantization: INT W8A8 SVDQuant": "SVDQuant W8A8 runs nunchaku's kernels, not torchao's int8",
    "quantization: W4A16 NF4": "bitsandbytes NF4 is not one of ldmpick's precision knobs",
    "quantization: INT W4A4 SVDQuant": "SVDQuant INT4 (nunchaku) is not one of ldmpick's precision knobs",
    "quantization: FP W4A4 SVDQuant": "SVDQuant FP4 (nunchaku) is not one of ldmpick's precision knobs",
    "quantization: INT W8A8 ViDiT-Q": "ViDiT-Q is not in diffusers or torchao",
    "quantization: INT W4A8 ViDiT-Q": "ViDiT-Q is not in diffusers or torchao",
    "quantization: INT W4A8 MixDQ": "MixDQ is not in diffusers or torchao",
    "quantization: INT W8A8 MixDQ": "MixDQ is not in diffusers or torchao",
}


def protocol_key(row: dict[str, str]) -> str | None:
    for source, table, key in PROTOCOL_OF:
        if row["source"].startswith(source) and row["table"].startswith(table):
            return key
    return None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def is_baseline(acceleration: str) -> bool:
    a = acceleration.lower()
    return a.startswith("none") or "(baseline)" in a


def mapping_of(method: str, steps: int) -> tuple[str, str, str, str]:
    """(knob text, mapping, diffusers config, note) of a published method."""
    m = FOCA_TAYLORSEER.fullmatch(method)
    if m:
        interval, order = int(m.group(1)), int(m.group(2))
        knob = parse_knob(f"cache=taylorseer(interval={interval},order={order},warmup=2,scope=blocks)")
        sched = CACHE.schedule(knob, steps)
        full = len(sched.full)
        note = (f"N is TaylorSeer's interval and O its order (not diffusers' defaults, interval 5 and order 1); with "
                f"warmup 2 and whole blocks predicted, diffusers' schedule runs {full} of {steps} steps in full, a "
                f"FLOP ratio of {steps / full:.2f}x against the table's; the reference implementation's own warm-up "
                "and update rule were not checked against diffusers'")
        config = (f"TaylorSeerCacheConfig(cache_interval={interval}, max_order={order}, disable_cache_before_step=2, "
                  "cache_identifiers=[transformer_blocks.N, single_transformer_blocks.N])")
        return knob.text, "approximate", config, note
    for prefix, why in NO_CONFIG.items():
        if method.startswith(prefix):
            return "", "none", "", why
    return "", "none", "", "no diffusers or torchao config among ldmpick's knobs corresponds"


def build(reference: Path) -> tuple[list[dict[str, str]], dict[str, int]]:
    text = reference.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    left: dict[str, int] = {}

    def leave(why: str) -> None:
        left[why] = left.get(why, 0) + 1

    baselines: dict[tuple[str, ...], dict[str, str]] = {}
    for r in rows:
        key = protocol_key(r)
        if key and is_baseline(r["acceleration"]) and "latency" not in r["metric"]:
            baselines[(key, r["model"], r["variant"], r["metric"], r["dataset"], r["steps"])] = r
    out = []
    for n, r in enumerate(rows, start=1):
        if "latency" in r["metric"] or is_baseline(r["acceleration"]):
            continue
        if any(r["acceleration"].lower().startswith(p) for p in NOT_KNOBS):
            leave("reduced steps / step distillation (the quality law's rows)")
            continue
        key = protocol_key(r)
        if key is None:
            leave("no baseline row in the same source and table")
            continue
        if any(r["metric"].startswith(s) for s in SIMILARITY_METRICS):
            leave("similarity to the baseline's images (LPIPS / PSNR)")
            continue
        base = baselines.get((key, r["model"], r["variant"], r["metric"], r["dataset"], r["steps"]))
        if base is None:
            leave("no baseline row in the same source and table")
            continue
        try:
            steps, value, base_value = int(r["steps"]), float(r["value"]), float(base["value"])
        except ValueError:
            leave("no numeric step count or value")
            continue
        knob, mapping, config, note = mapping_of(r["acceleration"], steps)
        out.append({
            "scale": QUALITY_SCALES.get((key, r["metric"]), f"{slug(r['metric'])}:{slug(r['dataset'])}:{key}"),
            "model": CATALOGUE_OF.get((r["model"], r["variant"]), ""),
            "reference_model": r["model"], "method": r["acceleration"], "knob": knob, "mapping": mapping,
            "diffusers_config": config, "mapping_note": note, "metric": r["metric"], "dataset": r["dataset"],
            "steps": str(steps), "guidance": r["guidance"], "baseline": base["value"], "value": r["value"],
            "delta": f"{value - base_value:.6g}",
            "higher_is_better": "no" if r["metric"].startswith(LOWER_IS_BETTER) else "yes",
            "speedup_stated": r["speedup"], "protocol": r["notes"], "source": r["source"], "table": r["table"],
            "reference_row": str(n),
        })
    return out, left


def check_catalogue() -> None:
    models = json.loads((ROOT / "ldmpick" / "data" / "models" / "catalogue.json").read_text())["models"]
    for (reference_model, _variant), name in CATALOGUE_OF.items():
        if models.get(name, {}).get("reference_name") != reference_model:
            raise SystemExit(f"catalogue model {name} is not reference model {reference_model}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--out", type=Path, default=ROOT / "ldmpick" / "data" / "knob_effects.csv")
    args = ap.parse_args(argv)
    check_catalogue()
    rows, left = build(args.reference)
    digest = hashlib.sha256(args.reference.read_bytes()).hexdigest()[:16]
    header = [
        f"# schema: {SCHEMA}",
        "# Published quality effects of acceleration knobs: each row a published value under a cache or quantization",
        "# method, as a change (delta = value - baseline) against its own source's baseline row (same table, model,",
        "# metric, data set and step count). Never compare values of different scales.",
        "# source: shared/reference/real_models/quality_steps_accel.csv (row number in reference_row)",
        "# caveats: read the source's .md: FoCa / cache-dit speedups are FLOP ratios, SVDQuant's FIDs are on a 5K",
        "#   prompt subset, CLIP models differ between tables (each table is its own scale here)",
        f"# source_sha256: {digest}",
        f"# command: python scripts/build_knob_effects.py  (ldmpick commit {commit()})",
        f"# date: {datetime.now(timezone.utc).date().isoformat()}",
        "# device: none (a transcription of published tables; nothing measured)",
        f"# versions: python {platform.python_version()}",
        "# knob: the ldmpick knob the method maps to (empty: none); mapping: approximate (mapping_note says what",
        "#   differs) or none; an effect used at another step count or on another model is 'transferred'.",
        "# left out: " + ", ".join(f"{why} x{n}" for why, n in sorted(left.items())),
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    args.out.write_text("\n".join(header) + "\n" + buf.getvalue(), encoding="utf-8")
    mapped = sum(1 for r in rows if r["knob"])
    print(f"wrote {args.out} ({len(rows)} effects, {mapped} mapped to a knob)")


if __name__ == "__main__":
    main()
