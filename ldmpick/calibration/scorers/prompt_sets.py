"""The prompts a scorer calibration generates from: a shipped prompt set (``ldmpick/data/prompts/<name>.tsv``, each
with its licence and provenance: ``parti-48``, 48 PartiPrompts in 12 categories) or the user's own file (one prompt
per line, named in the scale by its stem and content digest). A prompt set is part of a scorer scale's key."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ldmpick import PACKAGE_DIR
from ldmpick.files.errors import UsageError

PROMPT_SET_SCHEMA = "ldmpick.prompts/1"
DEFAULT_PROMPT_SET = "parti-48"
PROMPT_SETS_DIR = PACKAGE_DIR / "data" / "prompts"
# the demo world's captions, made rather than shipped: exactly the prompts of a demo FID calibration of 256 images at
# seed 0 (scene i of the world at the calibration's prompt seed), so its images are the ones whose FID was measured
DEMO_WORLD_SET, DEMO_WORLD_PROMPTS = "demo-world-256", 256


@dataclass(frozen=True)
class PromptSet:
    name: str  # as it appears in a scale key
    prompts: tuple[str, ...]
    categories: tuple[str, ...] = ()  # per prompt ("" when the set has none)
    source: str = ""

    def for_samples(self, samples: int) -> list[str]:
        """The prompt of each of ``samples`` images: the set in order, repeated (image i gets prompt i mod n)."""
        return [self.prompts[i % len(self.prompts)] for i in range(samples)]


def shipped_prompt_sets() -> list[str]:
    return sorted([p.stem for p in PROMPT_SETS_DIR.glob("*.tsv")] + [DEMO_WORLD_SET])


def load_prompt_set(name: str = DEFAULT_PROMPT_SET) -> PromptSet:
    """A shipped prompt set by name (a one-line error naming the shipped ones otherwise)."""
    from ldmpick.files.errors import unknown_name
    from ldmpick.files.reader import read_text_file

    if name not in shipped_prompt_sets():
        raise unknown_name("prompt set", name, shipped_prompt_sets())
    if name == DEMO_WORLD_SET:
        from ldmpick.calibration.images import PROMPT_SEED_OFFSET
        from ldmpick.demo.world import dataset

        _, captions, scenes = dataset(PROMPT_SEED_OFFSET, DEMO_WORLD_PROMPTS)
        return PromptSet(name, tuple(captions), tuple(s.shape for s in scenes),
                         f"ldmpick.demo.world.dataset({PROMPT_SEED_OFFSET}, {DEMO_WORLD_PROMPTS}) captions")
    path = PROMPT_SETS_DIR / f"{name}.tsv"
    text = read_text_file(path, "prompt set")
    first = text.split("\n", 1)[0].strip()
    if first != f"# schema: {PROMPT_SET_SCHEMA}":
        raise UsageError(f"prompt set '{path}' is not of schema {PROMPT_SET_SCHEMA}")
    rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))),
                               delimiter="\t"))
    prompts = tuple(r["prompt"] for r in rows if r.get("prompt"))
    if not prompts:
        raise UsageError(f"prompt set '{path}' has no prompts")
    return PromptSet(name, prompts, tuple(r.get("category") or "" for r in rows if r.get("prompt")), str(path))


def prompt_set_from_file(path: Path) -> PromptSet:
    """The user's prompts file as a prompt set named ``<stem>-<first 8 hex of its prompts' sha256>``."""
    from ldmpick.generation.runner import read_prompts_file

    prompts = tuple(read_prompts_file(path))
    digest = hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-._")[:40] or "prompts"
    return PromptSet(f"{stem}-{digest}", prompts, source=str(path))
