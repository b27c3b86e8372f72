"""Backbone family adapters, one module each, chosen from ``model_index.json``.

The family of a model is decided by the ``_class_name`` of its pipeline (and checked against the class of its
denoiser), never by which folders exist. To add a family: write one module in this folder with a ``Family``
subclass and a ``FAMILY`` instance; every module here but ``base`` is a family (the first ones in ``_FIRST``'s
order, the rest by name), so adding one touches no other file.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from ldmpick.files.errors import ModelError
from ldmpick.models.families.base import Family, TextEncoder

_FIRST = ("sd", "sdxl", "pixart", "sd3", "flux", "sana")  # the order error messages and listings name them in
_FOUND = {m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")}
_MODULES = tuple(m for m in _FIRST if m in _FOUND) + tuple(sorted(_FOUND - set(_FIRST)))

FAMILIES: dict[str, Family] = {}
for _module in _MODULES:
    _family: Family = import_module(f"ldmpick.models.families.{_module}").FAMILY
    FAMILIES[_family.name] = _family

PIPELINE_FAMILIES: dict[str, Family] = {p: f for f in FAMILIES.values() for p in f.pipelines}
# (the generic family claims no pipeline class: ``family_for`` falls back to it)


def family_named(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelError(f"unknown model family '{name}' (known: {', '.join(FAMILIES)})") from None


def family_for(pipeline_class: str | None, denoiser_class: str | None, where: str,
               components: dict[str, str] | None = None) -> Family:
    """The adapter for a pipeline folder, from ``model_index.json``'s pipeline class and denoiser class; a pipeline
    class no adapter serves gets the generic one when it follows diffusers' conventions (``components``: the
    folder's component classes), else a one-line error saying why."""
    if not pipeline_class:
        raise ModelError(f"{where}: model_index.json names no pipeline class ('_class_name')")
    family = PIPELINE_FAMILIES.get(pipeline_class)
    if family is None:
        from ldmpick.models.families import generic

        why = generic.convention_problem(pipeline_class, components or {})
        if why is None:
            return generic.FAMILY
        raise ModelError(f"{where}: pipeline class '{pipeline_class[:80]}' has no ldmpick adapter and cannot be run "
                         f"generically: {why}; see {generic.GUIDE}")
    if denoiser_class and denoiser_class not in family.denoiser_classes:
        raise ModelError(f"{where}: a {pipeline_class} with a '{denoiser_class[:80]}' denoiser is not supported "
                         f"(expected {', '.join(family.denoiser_classes)})")
    return family


__all__ = ["FAMILIES", "Family", "TextEncoder", "family_for", "family_named"]
