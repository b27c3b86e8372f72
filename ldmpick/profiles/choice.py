"""Which profile a command uses: the one policy for recommend, generate, plot and calibrate.

An explicit reference wins (``--profile``), then ``$LDMPICK_PROFILE``. Otherwise every complete local and shipped
profile competes, ranked by, in order:

1. it measures every asked model (with none asked: not only the demo models, unless the caller's ``usable`` says
   what it needs); a model under a built-in name counts only if it is the installed one (same parameter count: a
   profile of an older demo family measured other weights under the same names). With none asked, recommend and
   plot rank first the profiles with a model the quality law can rank (``rankable``: a profile of your own
   uncalibrated model is passed over, with a note; prompt accuracy, which only the demo family has, picks a demo
   profile);
2. its built-in models are all the installed ones;
3. it was measured at the asked settings (resolution, batch, mode); with no resolution asked, at the native
   resolution of its models (the demo models: 32 px);
4. it was measured on this device;
5. it was measured with the asked guidance (CFG-doubled batch or not: after the device, since a guidance
   mismatch is warned of while another machine's latencies are simply wrong);
6. it is the user's own (local) rather than shipped;
7. it is the shipped ``default.json``;
8. it is the newest.

The choice carries the profile, its file, how it was chosen and a one-line notice saying which profile and why, so
that every command can say it. Torch-free: this is the ``recommend`` path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldmpick.files.errors import LdmpickError, UsageError
from ldmpick.profiles.schema import Profile

class NoProfileError(UsageError):
    """No profile qualifies (none local, none shipped, or none the caller can use)."""


HOW = ("--profile", "LDMPICK_PROFILE", "local", "shipped-match", "shipped-default")


@dataclass(frozen=True)
class ProfileChoice:
    profile: Profile
    path: Path
    how: str  # one of HOW: "--profile", "LDMPICK_PROFILE", "local", "shipped-match", "shipped-default"
    notice: str  # one line: which profile, and why
    this_device: bool  # measured on the device the command runs on
    models: list[str] | None = None  # the asked models under the names profiles keep them by (catalogue.model_label)


@dataclass(frozen=True)
class _Candidate:
    path: Path
    profile: Profile
    local: bool


def choose_profile(ref: str | None = None, *, device: str | None = None, device_key_now: str | None = None,
                   models: list[str] | None = None, resolution: int | None = None, batch: int | None = None,
                   cfg: bool | None = None, mode: str | None = None,
                   usable: Callable[[Profile], bool] | None = None,
                   rankable: Callable[[Profile], bool] | None = None) -> ProfileChoice:
    """The profile to use (see the module's docstring for the order). ``device`` ("cpu", "cuda:1") or
    ``device_key_now`` (a ``device_key``) says which device this is (default: this machine's GPU, else its CPU);
    ``usable`` drops candidates the caller cannot use (generate: those without a model that has weights);
    ``rankable`` (recommend with no models asked: a model with quality data on the asked scale) ranks the profiles
    that pass it first, and the notice names the user's own profile of this device that it passed over.
    ``models`` may name folders, as ``profile --models`` does: each is compared under the name profiles keep it by
    (``catalogue.model_label``), which the choice carries as ``models``.
    Raises ``NoProfileError`` when no profile qualifies."""
    from dataclasses import replace

    from ldmpick.models.catalogue import installed_params, model_labels, other_model_under_builtin_name
    from ldmpick.profiles.device_block import device_key

    asked, models = models, model_labels(models)

    if device_key_now is None:
        from ldmpick.hardware.fingerprint import light_fingerprint

        device_key_now = device_key(light_fingerprint(device))
    for how, value in (("--profile", ref), ("LDMPICK_PROFILE", os.environ.get("LDMPICK_PROFILE"))):
        if value:
            return replace(_named(value, how, device_key_now), models=models)

    installed: dict[str, int | None] = {}

    def stale(p: Profile) -> set[str]:
        """Its models under built-in names that are not the installed models of those names."""
        for m in p.models:
            if m.name not in installed:
                installed[m.name] = installed_params(m.name)
        return {m.name for m in p.models if m.ok and other_model_under_builtin_name(m.name, m.denoiser_params,
                                                                                     installed[m.name])}

    def covers(p: Profile) -> bool:
        names = set(p.model_names()) - stale(p)
        if models:
            return all(m in names for m in models)
        return usable is not None or not all(n.startswith("demo-") for n in names)

    known: dict[str, int | None] = {}

    def native(name: str) -> int | None:
        if name not in known:
            known[name] = native_resolution(name)
        return known[name]

    def at_settings(p: Profile) -> bool:
        st = p.settings
        if resolution is None:
            asked = models or [m.name for m in p.models if m.ok]
            natives = {native(m) for m in asked} - {None}
            if natives and st.resolution not in natives:
                return False
        elif st.resolution != resolution:
            return False
        return (batch is None or st.batch == batch) and (mode is None or st.mode == mode)

    def guided_as_asked(p: Profile) -> bool:  # ranked after the device (module docstring, 5.)
        return cfg is None or p.settings.cfg == cfg

    candidates = [c for c in _candidates() if usable is None or usable(c.profile)]
    if not candidates:
        raise NoProfileError("no profile found; measure this machine with 'ldmpick profile'")

    def ranks(p: Profile) -> bool:
        return rankable is None or rankable(p)

    def rank(c: _Candidate) -> tuple[bool, bool, bool, bool, bool, bool, bool, bool, bool, Any]:
        p = c.profile  # (a demo-only profile serves a metric that only it has data for: prompt accuracy)
        return (covers(p) and ranks(p), ranks(p), covers(p), not stale(p), at_settings(p),
                p.device_key == device_key_now, guided_as_asked(p), c.local,
                not c.local and c.path.name == "default.json", p.created_at)

    best = max(candidates, key=rank)
    passed_over = ""
    if rankable is not None and not (best.local and best.profile.device_key == device_key_now):
        mine = [c for c in candidates if c.local and c.profile.device_key == device_key_now and not ranks(c.profile)]
        if mine:
            newest = max(mine, key=lambda c: c.profile.created_at).profile
            passed_over = (f" (your profile '{newest.id}' of this device was passed over: none of its models "
                           f"({', '.join(newest.model_names())}) has quality data on this scale; calibrate them with "
                           "'ldmpick calibrate', or use it with --profile)")
    if models and usable is None and not covers(best.profile):
        raise NoProfileError(_not_measured(models, asked or models, candidates, stale))
    p = best.profile
    this_device = p.device_key == device_key_now
    at_native = at_settings(p) and resolution is None and any(native(m) for m in p.model_names())
    why = _why(covers(p), at_native, models, p)
    if best.local and this_device:
        return ProfileChoice(p, best.path, "local", f"using your profile of this device '{p.id}'{why}", True, models)
    if best.local:
        return ProfileChoice(p, best.path, "local",
                             f"using your profile '{p.id}'{why}, measured on another device ({p.device_name}) — "
                             f"latencies are NOT this machine's: run 'ldmpick profile'{passed_over}", False, models)
    if this_device:
        return ProfileChoice(p, best.path, "shipped-match",
                             f"using the shipped reference profile of this device '{p.id}'{why}; "
                             f"run 'ldmpick profile' to measure your own machine{passed_over}", True, models)
    return ProfileChoice(p, best.path, "shipped-default",
                         f"no profile of this device{why}; using the shipped default '{p.id}' ({p.device_name}, "
                         f"{p.settings.describe()}) — latencies are NOT this machine's: run 'ldmpick profile'"
                         f"{passed_over}",
                         False, models)


def quality_data_for(law: Any, metric: str, samplers: list[str] | None = None) -> Callable[[Profile], bool]:
    """``choose_profile``'s ``rankable`` for recommend and plot with no models asked: a profile that measured a
    model the law has ``metric`` data for, with one of ``samplers`` (None: any) that fits it."""
    def rankable(p: Profile) -> bool:
        return any(law.quality_basis(m.name, s.name, metric) is not None for m in p.models if m.ok
                   for s in p.samplers if (samplers is None or s.name in samplers) and m.fits_sampler(s.name))

    return rankable


def _named(value: str, how: str, device_key_now: str) -> ProfileChoice:
    from ldmpick.profiles.schema import load_profile
    from ldmpick.profiles.store import find_profile

    try:
        path = find_profile(value)
    except UsageError as exc:
        if how == "LDMPICK_PROFILE":  # say where the name came from
            raise UsageError(f"$LDMPICK_PROFILE: {exc}") from None
        raise
    p = load_profile(path)
    this_device = p.device_key == device_key_now
    warning = "" if this_device else (f" warning: it was measured on another device ({p.device_name}); "
                                      "run 'ldmpick profile' to measure this one")
    if not p.complete:
        warning += (" warning: it is a partial profile (an interrupted run): the models it did not reach are missing; "
                    "finish it with 'ldmpick profile --resume'")
    return ProfileChoice(p, path, how, f"using profile '{p.id}' (from {how}).{warning}", this_device)


def _candidates() -> list[_Candidate]:
    """Every complete profile that loads: the user's, then the shipped ones. A broken file is skipped here
    ('ldmpick profiles list' shows its problem)."""
    from ldmpick.profiles import store as profile_store
    from ldmpick.profiles.schema import load_profile
    from ldmpick.files.storage import profiles_dir

    found = []
    for local, folder in ((True, profiles_dir()), (False, profile_store.shipped_profiles_dir())):
        for path in profile_store.list_profile_files(folder):
            try:
                p = load_profile(path)
            except LdmpickError:
                continue
            if p.complete:
                found.append(_Candidate(path, p, local))
    return found


def samplers_measured_elsewhere(profile: Profile) -> dict[str, set[str]]:
    """Per ok model of ``profile``: the samplers the other complete local and shipped profiles measured for the
    same model (same name and denoiser parameter count). What a profile of fewer samplers than those leaves out."""
    from ldmpick.models.catalogue import other_model_under_builtin_name

    out: dict[str, set[str]] = {m.name: set() for m in profile.models if m.ok}
    for c in _candidates():
        if c.profile.id == profile.id:
            continue
        measured = {s.name for s in c.profile.samplers}
        for m in c.profile.models:
            ours = next((x for x in profile.models if x.name == m.name and x.ok), None)
            if ours is None or not m.ok or other_model_under_builtin_name(m.name, m.denoiser_params,
                                                                           ours.denoiser_params):
                continue
            out[m.name] |= {s for s in measured if m.fits_sampler(s)}
    return out


def _not_measured(models: list[str], asked: list[str], candidates: list[_Candidate],
                  stale: Callable[[Profile], set[str]]) -> str:
    """Why no profile serves ``models``: a name nobody knows (with the closest known one), which profile
    measures which model (a recommendation compares models of one profile only: one device, one setting), or that
    the only profiles of a model measured an older model under its name. ``asked``: the names as typed (the folders
    that 'ldmpick profile --models' takes), one per distinct model."""
    import difflib

    from ldmpick.models.catalogue import known_names, models_argument, typed_by_label

    typed = typed_by_label(asked)
    command = f"'ldmpick profile --models {models_argument([typed.get(m, m) for m in models])}'"

    where = {m: [c.profile.id for c in candidates if m in c.profile.model_names() and m not in stale(c.profile)]
             for m in models}
    for m in models:
        older = [c.profile.id for c in candidates if m in stale(c.profile)]
        if not where[m] and older:
            return (f"no profile measures the installed '{m}': '{older[0]}' measured another model under that name "
                    f"(another parameter count; an older release?); measure it: {command}")
    names = set(known_names()) | {n for c in candidates for n in c.profile.model_names()}
    for m in models:
        if not where[m] and m not in names and not Path(typed.get(m, m)).expanduser().is_dir():
            close = difflib.get_close_matches(m, sorted(names), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return (f"unknown model '{m}'{hint} (no profile measures it, and it is not a model ldmpick knows: "
                    "'ldmpick models list')")
    measured = "; ".join(f"{m}: {', '.join(repr(i) for i in ids[:2]) if ids else 'none'}" for m, ids in where.items())
    return (f"no profile measures all of {', '.join(models)} ({measured}); measure them together on this machine: "
            f"{command}")


def _why(covers: bool, at_native: bool, models: list[str] | None, p: Profile) -> str:
    parts = []
    if covers and models:
        parts.append(f"that measures {', '.join(models)}")
    if at_native:
        parts.append(f"at {'its' if models and len(models) == 1 else 'their'} native {p.settings.resolution} px")
    return f" ({' '.join(parts)})" if parts else ""


def native_resolution(name: str) -> int | None:
    """The resolution a model of this installation generates at by default; None for a name this installation
    does not define (a profile's names are labels, never opened as paths)."""
    from ldmpick.models.catalogue import resolve_trusted_name

    try:
        spec = resolve_trusted_name(name)
        return None if spec is None else int(spec.native_resolution)
    except (LdmpickError, OSError, ValueError, KeyError, TypeError):
        return None
