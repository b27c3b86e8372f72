"""The profiles a user has: listing the local and the shipped ones, finding one by reference, importing a shared
file into the user profile folder, exporting one. No printing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ldmpick.files.errors import LdmpickError, UsageError

EXPORT_FORMATS = ("json", "csv", "markdown")


def load_ref(ref: str) -> Any:  # -> Profile
    """The profile named by an id, a name prefix or a file."""
    from ldmpick.profiles.schema import load_profile
    from ldmpick.profiles.store import find_profile

    return load_profile(find_profile(ref))


def profile_rows() -> list[dict[str, Any]]:
    """Every local and shipped profile as a JSON-ready row; a file that does not load gets its problem instead."""
    from ldmpick.profiles.schema import load_profile
    from ldmpick.profiles.store import list_profile_files, shipped_profiles_dir
    from ldmpick.files.storage import profiles_dir

    rows = []
    for where, folder in (("local", profiles_dir()), ("shipped", shipped_profiles_dir())):
        for path in list_profile_files(folder):
            try:
                p = load_profile(path)
                rows.append({"where": where, "id": p.id, "file": path.name, "device": p.device_name,
                             "settings": p.settings.describe(), "models": len(p.models), "created": p.created,
                             "path": str(path), "problem": None})
            except LdmpickError as exc:
                rows.append({"where": where, "id": "?", "file": path.name, "device": "?", "settings": "", "models": 0,
                             "created": "", "path": str(path), "problem": str(exc)})
    return rows


def import_profile(path: Path, force: bool = False) -> tuple[Any, Path]:
    """Validate a shared profile file and add it to the user profile folder; returns it and where it went.

    Reading is bounded (a regular file of at most 10 MB, at most 64 models and 32 samplers); a profile dated in the
    future is refused (it would be everyone's newest), and so is one whose id is a shipped profile's (it would
    shadow it)."""
    from ldmpick.profiles.schema import load_profile
    from ldmpick.profiles.store import list_profile_files, save_new_profile, shipped_profiles_dir, stored_profile_path
    from ldmpick.files.storage import profiles_dir

    profile = load_profile(path)
    if not profile.complete:
        raise UsageError(f"'{path}' is a partial (interrupted) profile; finish it with 'ldmpick profile --resume'")
    if not any(m.ok for m in profile.models):
        raise UsageError(f"'{path}' measures no model (nothing to recommend from); refusing it")
    for shipped in list_profile_files(shipped_profiles_dir()):
        try:
            shipped_id = load_profile(shipped).id
        except LdmpickError:
            continue
        if shipped_id == profile.id:
            raise UsageError(f"'{path}' has the id of the shipped profile '{shipped.stem}' ('{profile.id}'); "
                             "it is available without importing (see 'ldmpick profiles list')")
    _check_builtin_names(profile, path)
    _check_sampler_names(profile, path)
    target = stored_profile_path(profile)
    profiles_dir().mkdir(parents=True, exist_ok=True)
    save_new_profile(profile, target, force=force)
    return profile, target


def _check_builtin_names(profile: Any, path: Path) -> None:
    """A model under a name ldmpick defines (ldm-83m, sdxl-base, demo-c8) must be that model: the law predicts its
    quality by the name, so another model renamed to it (its parameter count gives it away) is refused."""
    from ldmpick.models.catalogue import format_params, installed_params, other_model_under_builtin_name

    for m in profile.models:
        ours = installed_params(m.name)
        if other_model_under_builtin_name(m.name, m.denoiser_params, ours):
            raise UsageError(f"'{path}': its model '{m.name}' has {format_params(m.denoiser_params)} parameters, "
                             f"ldmpick's '{m.name}' has {format_params(ours)}; another model under a built-in name "
                             "would get that model's quality predictions: rename it in the file")


def _check_sampler_names(profile: Any, path: Path) -> None:
    """Every sampler the profile names (its measured overheads, the samplers a model fits) must be one ldmpick has:
    recommend would cost and pick a name generate cannot run."""
    from ldmpick.files.errors import unknown_name
    from ldmpick.models.samplers import SAMPLERS

    names = [s.name for s in profile.samplers] + [n for m in profile.models for n in (m.samplers or [])]
    for name in names:
        if name not in SAMPLERS:
            raise UsageError(f"'{path}': {unknown_name('sampler', name, SAMPLERS)}")


def check_export_target(out: Path) -> None:
    """An export never goes into a profile folder: it would replace a stored profile (a CSV export over a
    profile's own file lost its measurements). Sharing a profile into the folder is 'ldmpick profiles import'."""
    from ldmpick.profiles.store import shipped_profiles_dir
    from ldmpick.files.storage import profiles_dir

    where = out.expanduser().resolve().parent
    for folder in (profiles_dir(), shipped_profiles_dir()):
        if where == folder.expanduser().resolve():
            raise UsageError(f"'{out}' is in the profile folder '{folder}': an export there would replace a stored "
                             "profile; export elsewhere (to add a profile, use 'ldmpick profiles import')")


def export_profile(ref: str, fmt: str) -> tuple[Any, str]:
    """The profile named by ``ref`` and its text as shareable JSON (re-importable), CSV or a Markdown table."""
    from ldmpick.files.errors import unknown_name
    from ldmpick.profiles.export import export_csv, export_markdown

    if fmt not in EXPORT_FORMATS:
        raise unknown_name("format", fmt, EXPORT_FORMATS)
    profile = load_ref(ref)
    if fmt == "json":
        return profile, profile.dumps()
    return profile, export_csv(profile) if fmt == "csv" else export_markdown(profile)
