"""Where profiles live: the user profile folder (named by profile id), the shipped reference profiles, finding one
by id, name prefix or path, and saving one. Torch-free (the ``recommend`` path)."""

from __future__ import annotations

import os
from pathlib import Path

from ldmpick.errors import ProfileError, UsageError
from ldmpick.profile_model import Profile, load_profile


def save_profile(profile: Profile, path: Path) -> Path:
    from ldmpick.storage import atomic_write_text, file_lock

    path = Path(path)
    with file_lock(path):
        atomic_write_text(path, profile.dumps())
    return path


def stored_profile_path(profile: Profile) -> Path:
    from ldmpick.storage import profiles_dir

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
    """A profile file path, or the id/stem of one in the user folder or the shipped ones."""
    from ldmpick.storage import profiles_dir

    p = Path(ref).expanduser()
    if p.suffix == ".json" or os.sep in ref or p.exists():
        if not p.exists():
            raise ProfileError(f"profile file '{ref}' does not exist")
        return p
    candidates = [d / f"{ref}.json" for d in (profiles_dir(), shipped_profiles_dir())]
    for c in candidates:
        if c.exists():
            return c
    # unique prefix of a file name or of a profile id (shipped files are named for people, ids are stamped)
    files = [f for d in (profiles_dir(), shipped_profiles_dir()) for f in list_profile_files(d)]
    matches = [f for f in files if f.stem.startswith(ref)]
    if not matches:
        for f in files:
            try:
                if load_profile(f).id.startswith(ref):
                    matches.append(f)
            except ProfileError:
                continue
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.stem for m in matches[:4])
        raise UsageError(f"profile name '{ref}' is ambiguous ({len(matches)} match: {names}); give more of it")
    raise ProfileError(f"no profile named '{ref}' (see 'ldmpick profiles list')")

