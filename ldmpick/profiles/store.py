"""Where profiles live: the user profile folder (named by profile id), the shipped reference profiles, finding one
by id, name prefix or path, and saving one. Torch-free (the ``recommend`` path)."""

from __future__ import annotations

import os
from pathlib import Path

from ldmpick.files.errors import ProfileError, UsageError
from ldmpick.profiles.schema import Profile, load_profile


def save_profile(profile: Profile, path: Path) -> Path:
    from ldmpick.files.storage import atomic_write_text, file_lock

    path = Path(path)
    with file_lock(path):
        atomic_write_text(path, profile.dumps())
    return path


def save_new_profile(profile: Profile, path: Path, force: bool = False) -> Path:
    """Save ``profile`` at ``path`` unless a file is there already (``force``: replace it). The check is made under
    the lock that the write holds: two imports of one id at once cannot both say "imported"."""
    from ldmpick.files.storage import atomic_write_text, file_lock

    path = Path(path)
    with file_lock(path):
        if (path.exists() or path.is_symlink()) and not force:
            raise UsageError(f"a profile with id '{profile.id}' already exists; use --force to replace it")
        atomic_write_text(path, profile.dumps())
    return path


def stored_profile_path(profile: Profile) -> Path:
    from ldmpick.files.storage import profiles_dir

    return profiles_dir() / f"{profile.id}.json"


def list_profile_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.json") if not p.name.endswith(".partial.json")), reverse=True)


def shipped_profiles_dir() -> Path:
    """Reference profiles that ship with the tool: the repository's ``profiles/`` folder, installed as the
    package ``ldmpick.reference_profiles``."""
    from importlib.resources import files

    return Path(str(files("ldmpick.reference_profiles")))


def find_profile(ref: str) -> Path:
    """The file of the profile ``ref`` names: a file path; else the local or shipped profile whose file name or id is
    ``ref`` (local first); else the one profile whose file name or id starts with ``ref``. A prefix of more than one
    profile is an error listing them all, local and shipped alike (a local profile is not preferred: the user may
    mean the shipped one)."""
    from ldmpick.files.storage import profiles_dir

    if not ref.strip():
        raise ProfileError("empty profile reference; give an id, a prefix of one or a file ('ldmpick profiles list')")
    p = Path(ref).expanduser()
    if p.suffix == ".json" or os.sep in ref or p.exists():
        if not p.exists():
            raise ProfileError(f"profile file '{ref}' does not exist")
        return p
    folders = (("local", profiles_dir()), ("shipped", shipped_profiles_dir()))
    for _, d in folders:
        if (d / f"{ref}.json").exists():
            return d / f"{ref}.json"
    entries = []  # (where, file, id or None when the file does not load)
    for where, d in folders:
        for f in list_profile_files(d):
            try:
                entries.append((where, f, load_profile(f).id))
            except ProfileError:
                entries.append((where, f, None))
    exact = [f for _, f, pid in entries if pid == ref]
    if exact:
        return exact[0]
    matches = [(w, f, pid) for w, f, pid in entries if f.stem.startswith(ref) or (pid or "").startswith(ref)]
    if len(matches) == 1:
        return matches[0][1]
    if matches:
        listed = "; ".join(f"{w} {pid or f.stem}" + ("" if f.stem == pid else f" in {f.name}") for w, f, pid in matches)
        raise UsageError(f"profile name '{ref}' is ambiguous: {len(matches)} profiles match ({listed}); give more of "
                         "it, or the whole id")
    raise ProfileError(f"no profile named '{ref}' (see 'ldmpick profiles list')")

