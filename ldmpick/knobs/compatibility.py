"""Which knob settings combine: a matrix over the settings' traits (each kind sorts its settings into a few, e.g.
``cache:adaptive``, ``compile:cudagraph``, ``precision:fp32``), in code and tested.

Every pair of traits of two kinds has a verdict: the ones that matter are written out in ``RULES`` with their
reason; every other pair is independent (the two change different things). Today's ``--mode`` values are compile
settings (``ldmpick.knobs.compile.from_mode``), so "which execution modes a knob combines with" is this matrix too.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from ldmpick.knobs import KnobSetting, knob_kind

# every trait a kind's ``trait`` may return, by kind
TRAITS: dict[str, tuple[str, ...]] = {
    "precision": ("precision:fp32", "precision:half", "precision:torchao"),
    "attention": ("attention:sdpa", "attention:any-dtype", "attention:half-only"),
    "cache": ("cache:none", "cache:adaptive", "cache:fixed"),
    "compile": ("compile:none", "compile:cudagraph", "compile:repeated-blocks", "compile:full"),
}


TESTED = "tested"  # run together in tests/test_knob_apply.py (on the CPU)
PUBLISHED = "published"  # published benchmark rows ran them together (the reason cites them)
REASONED = "reasoned"  # follows from how the two work; not yet run together by ldmpick


@dataclass(frozen=True)
class Verdict:
    """Whether two traits combine, why (one line), and what the verdict rests on."""

    ok: bool
    reason: str
    basis: str = REASONED


INDEPENDENT = Verdict(True, "independent: they change different things")
# pairs tests/test_knob_apply.py applies together on the CPU (a tiny FluxPipeline with precision=fp32,
# attention=sdpa, cache=pab, compile=none): their verdicts rest on that run
TESTED_PAIRS = {frozenset({"precision:fp32", "cache:fixed"}), frozenset({"cache:fixed", "compile:none"}), frozenset({"attention:sdpa", "cache:fixed"}),
                frozenset({"precision:fp32", "compile:none"}), frozenset({"precision:fp32", "attention:sdpa"}),
                frozenset({"attention:sdpa", "compile:none"})}
RULES: dict[frozenset[str], Verdict] = {
    frozenset({"cache:adaptive", "compile:cudagraph"}): Verdict(
        False, "an adaptive cache branches on content at every step, which one captured CUDA graph cannot replay"),
    frozenset({"cache:fixed", "compile:cudagraph"}): Verdict(
        False, "a fixed-schedule cache needs one CUDA graph per step kind (full, cached), and ldmpick's runner "
        "captures one per input signature, which a full and a cached step share; its step counter is Python state "
        "a replay skips"),
    frozenset({"cache:adaptive", "compile:full"}): Verdict(
        True, "combines: torch.compile breaks the graph at the skip decision and compiles both sides (FBCache "
        "compiled on an H100, diffusers PR 12648: 8.7 s against 11.7 s for FLUX.1-dev at 50 steps)", PUBLISHED),
    frozenset({"cache:fixed", "compile:full"}): Verdict(
        True, "combines: the cache's step counter is kept out of the graph (torch.compiler.disable), the rest is "
        "compiled (TaylorSeer compiled on an H100, diffusers PR 12648: 4.9 s for FLUX.1-dev at 50 steps)",
        PUBLISHED),
    frozenset({"cache:adaptive", "compile:repeated-blocks"}): Verdict(
        True, "combines: the blocks are compiled, the skip decision between them runs in Python"),
    frozenset({"cache:fixed", "compile:repeated-blocks"}): Verdict(
        True, "combines: the blocks are compiled, the schedule's step counter runs in Python"),
    frozenset({"precision:fp32", "attention:half-only"}): Verdict(
        False, "this attention kernel takes bf16 / fp16 inputs only; use precision=bf16"),
    frozenset({"precision:torchao", "compile:none"}): Verdict(
        True, "combines, but torchao's quantized layers are slow eagerly (int8 weight-only FLUX.1-dev on an H100: "
        "8.6 s against 6.6 s in bf16; 4.6 s compiled, sayakpaul/diffusers-torchao): measure it with compile",
        PUBLISHED),
    frozenset({"precision:torchao", "compile:full"}): Verdict(
        True, "combines: the pairing torchao is made for (fused quantize and matmul kernels; fp8 row-wise "
        "compiled FLUX.1-dev on an H100: 3.0 s against 6.6 s eager bf16, sayakpaul/diffusers-torchao)", PUBLISHED),
    frozenset({"precision:torchao", "compile:repeated-blocks"}): Verdict(
        True, "combines: the quantized blocks are compiled one by one"),
}


def verdict(a: str, b: str) -> Verdict:
    """The verdict on two traits of different kinds (symmetric)."""
    if a.split(":")[0] == b.split(":")[0]:
        return Verdict(False, "one setting per kind")
    pair = frozenset({a, b})
    found = RULES.get(pair, INDEPENDENT)
    if pair in TESTED_PAIRS:
        return Verdict(found.ok, found.reason, TESTED)
    return found


def combine(a: KnobSetting, b: KnobSetting) -> Verdict:
    """Whether settings ``a`` and ``b`` run together."""
    if a.kind == b.kind:
        return Verdict(False, f"one {a.kind} setting at a time ({a.text}, {b.text})")
    return verdict(knob_kind(a.kind).trait(a), knob_kind(b.kind).trait(b))


def with_mode(setting: KnobSetting, mode: str) -> Verdict:
    """Whether ``setting`` runs in today's execution ``mode`` (eager / cudagraph / compile)."""
    from ldmpick.knobs.compile import from_mode

    if setting.kind == "compile":
        same = setting == from_mode(mode)
        return Verdict(same, "the same setting" if same else f"{setting.text} is another execution mode than {mode}")
    return combine(setting, from_mode(mode))


def refusals(settings: tuple[KnobSetting, ...] | list[KnobSetting]) -> list[str]:
    """One line per pair of ``settings`` that does not combine."""
    return [f"{a.text} with {b.text}: {v.reason}" for a, b in combinations(settings, 2)
            if not (v := combine(a, b)).ok]


def matrix() -> dict[tuple[str, str], Verdict]:
    """The whole matrix: every pair of traits of different kinds (in ``TRAITS`` order) -> its verdict."""
    kinds = list(TRAITS)
    out = {}
    for i, ka in enumerate(kinds):
        for kb in kinds[i + 1:]:
            for a in TRAITS[ka]:
                for b in TRAITS[kb]:
                    out[(a, b)] = verdict(a, b)
    return out
