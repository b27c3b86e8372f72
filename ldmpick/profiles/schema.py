"""A profile: the measured latencies of one device, in JSON (schema ``ldmpick.profile/4``; versions 1-3 are read).

A profile holds one set of settings (device, dtype, resolution, batch, guidance, execution mode), the device
fingerprint, each sampler's per-step overhead and, per model, its denoiser step latency and its own fixed costs
(its text-encoder stack, its VAE decode), every number with its spread and raw samples, and, for a model with
weights, its own pipeline call measured end to end (``ldmpick.profiles.call_block``; version 3), and its measured
knob variants (``ldmpick.profiles.knob_block``; version 4). See docs/profile-format.md.
Parsing validates every field (``profile_fields``, ``profile_device``); files are read through ``file_input``.
Where profiles are kept is ``profile_store``; exports and diffs are ``profile_export``.

This module is on the ``recommend`` path: it must not import torch or diffusers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldmpick.files.errors import LdmpickError, ProfileError
from ldmpick.profiles.call_block import PipelineCall
from ldmpick.profiles.knob_block import KnobVariant, knob_variants_of
from ldmpick.profiles.latency_stats import MAX_SAMPLES, LatencyStats, _quantile  # noqa: F401 (re-exported)
from ldmpick.profiles.device_block import device_key, validate_device
from ldmpick.profiles.fields import (
    CONTROL,
    MAX_COUNT,
    MAX_NAME_CHARS,
    check_latency,
    choice,
    clip,
    integer,
    label,
    model_name,
    nonempty_str,
    nonneg,
    obj,
    opt_int,
    opt_str,
)

SCHEMA = "ldmpick.profile/4"
SCHEMA_FAMILY = "ldmpick.profile/"
# version 1: UNet only, one set of fixed parts; version 2: no pipeline_call; version 3: a model's pipeline call;
# version 4: a model's measured knob variants
READABLE_SCHEMAS = {"ldmpick.profile/1": 1, "ldmpick.profile/2": 2, "ldmpick.profile/3": 3, "ldmpick.profile/4": 4}
MAX_FILE_BYTES = 10 * 1024 * 1024  # a real profile is a few hundred KB at most
MAX_MODELS = 64  # per profile: bounds the work of recommend (models x samplers x steps candidates)
MAX_SAMPLERS = 32
FUTURE_SLACK_S = 86_400  # clocks disagree; a profile dated later than a day from now is refused
MAX_JSON_DEPTH = 12
MODEL_STATUSES = ("ok", "does_not_fit", "error")
MODES = ("eager", "cudagraph", "compile")
DTYPES = ("fp16", "bf16", "fp32")  # the keys of execution.DTYPES (this module stays torch-free)
RUN_TOKEN = re.compile(r"[a-z0-9]{0,16}")
MAX_SOURCE_CHARS = 4096  # a model's source label (a folder path at most PATH_MAX long)


def created_time(created: str) -> Any:  # -> datetime
    """``created`` (already checked by ``check_created``) as an aware UTC datetime."""
    from datetime import datetime, timezone

    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return (when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def check_created(created: str) -> str:
    """An ISO 8601 date-time that is not in the future: a profile dated 9999-12-31 would otherwise be everyone's
    newest (``choose_profile`` prefers newer profiles)."""
    from datetime import datetime, timezone

    when = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]{1,32}(Z|[+-]\d{2}:?\d{2})?", created):
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            pass
    if when is None:
        raise ProfileError(f"created '{clip(created)}' is not an ISO 8601 date-time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if (when - datetime.now(timezone.utc)).total_seconds() > FUTURE_SLACK_S:
        raise ProfileError(f"created '{clip(created)}' is in the future; refusing it (a profile cannot have been "
                           "measured later than now)")
    return created


@dataclass
class Settings:
    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str
    resolution: int
    batch: int
    cfg: bool
    mode: str
    warmup: int
    repeats: int
    max_seconds_per_model: float
    threads: int | None = None  # torch CPU threads
    rounds: int = 1  # UNet measurements interleaved across models in this many rounds (drift hits every model)

    @property
    def unet_batch(self) -> int:
        return self.batch * (2 if self.cfg else 1)

    def key(self) -> tuple[Any, ...]:
        return (self.resolution, self.batch, self.cfg, self.mode, self.dtype)

    def describe(self) -> str:
        return (
            f"{self.resolution}px, batch {self.batch}, {'cfg' if self.cfg else 'no cfg'}, "
            f"{self.dtype}, {self.mode} on {self.device}"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any) -> Settings:
        d = obj(data, "settings")
        device = nonempty_str(d, "device", "settings")
        if not re.fullmatch(r"cpu|cuda(:\d{1,4})?|mps", device):
            raise ProfileError(f"settings.device '{clip(device)}' is not cpu, cuda, cuda:N or mps")
        dtype = choice(d, "dtype", DTYPES, "settings")
        mode = choice(d, "mode", MODES, "settings")
        resolution = integer(d, "resolution", "settings", minimum=8, maximum=16384)
        batch = integer(d, "batch", "settings", minimum=1, maximum=4096)
        cfg = d.get("cfg")
        if not isinstance(cfg, bool):
            raise ProfileError("settings.cfg must be true or false")
        threads = d.get("threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or not 1 <= threads <= MAX_COUNT):
            raise ProfileError(f"settings.threads must be an integer in [1, {MAX_COUNT}] or null")
        return cls(
            device=device,
            dtype=dtype,
            resolution=resolution,
            batch=batch,
            cfg=cfg,
            mode=mode,
            warmup=integer(d, "warmup", "settings", minimum=0),
            repeats=integer(d, "repeats", "settings", minimum=1),
            max_seconds_per_model=nonneg(d, "max_seconds_per_model", "settings"),
            threads=threads,
            rounds=integer(d, "rounds", "settings", minimum=1, maximum=1000) if "rounds" in d else 1,
        )


@dataclass
class ModelLatency:
    """One model's measured costs: one denoiser step (one evaluation at the profile's batch, doubled when this model
    runs classifier-free guidance as a doubled batch), and its own fixed parts: its text-encoder stack (prompt and,
    with CFG, the negative prompt) and its VAE decode."""

    name: str
    status: str  # "ok" | "does_not_fit" | "error"
    denoiser_params: int
    denoiser_step: LatencyStats | None = None
    peak_memory_bytes: int | None = None
    weight_bytes: int | None = None
    source: str = ""  # what the user named (family name, hub id, folder): a label only, never opened
    error: str | None = None
    family: str = "sd"  # the adapter (ldmpick.models.families) that built it
    cfg: bool | None = None  # whether its step was measured with the CFG-doubled batch (None: the profile's cfg)
    distilled: bool = False  # few-step distilled: distilled samplers (lcm, scm) fit it
    samplers: list[str] | None = None  # the samplers that fit it (None: every sampler of the profile)
    text_encoder: LatencyStats | None = None
    vae_decode: LatencyStats | None = None
    text_encoders: str = ""  # the stack, e.g. "CLIP-L + OpenCLIP-bigG + T5-XXL (256 tokens)"
    pipeline_call: PipelineCall | None = None  # its own pipeline call end to end (a model with weights; version 3)
    # joules per part, from NVML's energy counter (NVIDIA GPUs; version 3): denoiser_step_j, text_encoder_j,
    # vae_decode_j, sampler_step_j and the NVML device name
    energy: dict[str, Any] | None = None
    knobs: list[KnobVariant] = field(default_factory=list)  # measured knob variants (version 4)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.denoiser_step is not None

    # names from schema 1, when every denoiser was a UNet
    @property
    def unet_step(self) -> LatencyStats | None:
        return self.denoiser_step

    @property
    def unet_params(self) -> int:
        return self.denoiser_params

    def fits_sampler(self, name: str) -> bool:
        return self.samplers is None or name in self.samplers

    def knob_variant(self, knobs: str) -> KnobVariant | None:
        """The variant measured with the knob list ``knobs`` (canonical text), or None."""
        return next((v for v in self.knobs if v.knobs == knobs), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "family": self.family,
            "denoiser_params": self.denoiser_params,
            "denoiser_step": self.denoiser_step.to_json() if self.denoiser_step else None,
            "cfg": self.cfg,
            "distilled": self.distilled,
            "samplers": self.samplers,
            "text_encoder": self.text_encoder.to_json() if self.text_encoder else None,
            "text_encoders": self.text_encoders,
            "vae_decode": self.vae_decode.to_json() if self.vae_decode else None,
            "peak_memory_bytes": self.peak_memory_bytes,
            "weight_bytes": self.weight_bytes,
            "source": self.source,
            "error": self.error,
            "pipeline_call": self.pipeline_call.to_json() if self.pipeline_call else None,
            "energy": self.energy,
            "knobs": [v.to_json() for v in self.knobs],
        }

    @classmethod
    def from_json(cls, data: Any, where: str, version: int = 2) -> ModelLatency:
        d = obj(data, where)
        status = choice(d, "status", MODEL_STATUSES, where)
        step_key, params_key = ("denoiser_step", "denoiser_params") if version >= 2 else ("unet_step", "unet_params")
        step = d.get(step_key)
        if status == "ok" and step is None:
            raise ProfileError(f"{where}: status 'ok' needs {step_key}")
        model = cls(
            name=model_name(d, where),
            status=status,
            denoiser_params=integer(d, params_key, where, minimum=1 if status == "ok" else 0),
            denoiser_step=LatencyStats.from_json(step, f"{where}.{step_key}") if step is not None else None,
            peak_memory_bytes=opt_int(d, "peak_memory_bytes", where),
            weight_bytes=opt_int(d, "weight_bytes", where),
            source=label(d, "source", where, MAX_SOURCE_CHARS, optional=True) or "",
            error=opt_str(d, "error", where),
        )
        if version < 2:
            return model
        model.family = label(d, "family", where, 32, optional=True) or "sd"
        from ldmpick.models.families import FAMILIES

        if model.family not in FAMILIES:  # the adapter that costs and runs it: an unknown one is no model of ours
            raise ProfileError(f"{where}.family '{model.family}' is not a model family of this ldmpick (known: "
                               f"{', '.join(FAMILIES)}); the file is from a newer ldmpick, or edited")
        cfg, distilled = d.get("cfg"), d.get("distilled", False)
        if cfg is not None and not isinstance(cfg, bool):
            raise ProfileError(f"{where}.cfg must be true, false or null")
        if not isinstance(distilled, bool):
            raise ProfileError(f"{where}.distilled must be true or false")
        model.cfg, model.distilled = cfg, distilled
        samplers = d.get("samplers")
        if samplers is not None:
            if not isinstance(samplers, list) or len(samplers) > MAX_SAMPLERS:
                raise ProfileError(f"{where}.samplers must be a list of at most {MAX_SAMPLERS} names or null")
            for i, x in enumerate(samplers):
                if not isinstance(x, str) or not x or len(x) > MAX_NAME_CHARS or CONTROL.search(x):
                    raise ProfileError(f"{where}.samplers[{i}] must be a sampler name")
            model.samplers = list(samplers)
        for key in ("text_encoder", "vae_decode"):
            if d.get(key) is not None:
                setattr(model, key, LatencyStats.from_json(d[key], f"{where}.{key}"))
        model.text_encoders = label(d, "text_encoders", where, MAX_NAME_CHARS, optional=True) or ""
        if version >= 3 and d.get("pipeline_call") is not None:
            model.pipeline_call = PipelineCall.from_json(d["pipeline_call"], f"{where}.pipeline_call")
        if version >= 3 and d.get("energy") is not None:
            model.energy = energy_block_of(d["energy"], f"{where}.energy")
        if version >= 4 and d.get("knobs") is not None:
            model.knobs = knob_variants_of(d["knobs"], f"{where}.knobs")
        return model


ENERGY_PARTS = ("denoiser_step_j", "text_encoder_j", "vae_decode_j", "sampler_step_j")
MAX_JOULES = 1e7  # one part of one image: far beyond any GPU's board power x a long denoiser step


def energy_block_of(data: Any, where: str) -> dict[str, Any]:
    """A model's energy block: each part's joules (finite, non-negative) and the NVML device it was measured on."""
    d = obj(data, where)
    out: dict[str, Any] = {}
    for key in ENERGY_PARTS:
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= MAX_JOULES:
            raise ProfileError(f"{where}.{key} must be a number of joules in [0, {MAX_JOULES:g}]")
        out[key] = float(v)
    out["device"] = label(d, "device", where, MAX_NAME_CHARS)
    return out


@dataclass
class SamplerOverhead:
    name: str
    evals_per_step: int
    step_overhead: LatencyStats  # scheduler.step + scale_model_input per sampling step, in ms

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "evals_per_step": self.evals_per_step, "step_overhead": self.step_overhead.to_json()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> SamplerOverhead:
        from ldmpick.models.samplers import SAMPLERS

        d = obj(data, where)
        name = label(d, "name", where, MAX_NAME_CHARS)
        evals = integer(d, "evals_per_step", where, minimum=1, maximum=16)
        known = SAMPLERS.get(name)
        if known is not None and evals != known.evals_per_step:  # latency is costed from ldmpick's table, never this
            raise ProfileError(f"{where}: sampler '{name}' takes {known.evals_per_step} denoiser evaluation(s) per "
                               f"step, not {evals}; the file is wrong or edited")
        return cls(
            name=name,
            evals_per_step=evals,
            step_overhead=LatencyStats.from_json(d.get("step_overhead"), f"{where}.step_overhead"),
        )


@dataclass
class Profile:
    settings: Settings
    device: dict[str, Any]  # fingerprint, see hardware/fingerprint.py
    models: list[ModelLatency]
    samplers: list[SamplerOverhead]
    created: str  # ISO 8601 UTC
    command: str = ""
    notes: str = ""
    wall_seconds: float | None = None
    complete: bool = True  # False for a partial (interrupted) run
    run: str = ""  # a token drawn per run, so that two runs in the same second get different ids ("" in old files)

    # ------------------------------------------------------------------ lookups
    @property
    def text_encoder(self) -> LatencyStats | None:
        """The text-encoder cost of the first measured model (each model has its own: ``ModelLatency``)."""
        return next((m.text_encoder for m in self.models if m.text_encoder is not None), None)

    @property
    def vae_decode(self) -> LatencyStats | None:
        """The VAE-decode cost of the first measured model (each model has its own: ``ModelLatency``)."""
        return next((m.vae_decode for m in self.models if m.vae_decode is not None), None)

    def share_fixed_parts(self, text_encoder: LatencyStats | None, vae_decode: LatencyStats | None) -> Profile:
        """Give every model the same fixed parts (what a version-1 file, measured with one model's configs, holds)."""
        for m in self.models:
            m.text_encoder, m.vae_decode = text_encoder, vae_decode
        return self

    def model_cfg(self, model: ModelLatency) -> bool:
        """Whether ``model``'s step was measured with the CFG-doubled batch."""
        return self.settings.cfg if model.cfg is None else model.cfg

    def model(self, name: str) -> ModelLatency:
        for m in self.models:
            if m.name == name:
                return m
        import difflib

        from ldmpick.models.catalogue import models_argument

        close = difflib.get_close_matches(name, self.model_names(), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ProfileError(f"profile '{self.id}' has no model '{name}'{hint} (it has: {', '.join(self.model_names())}); "
                           f"measure it with 'ldmpick profile --models {models_argument([name])}'")

    @property
    def created_at(self) -> Any:  # -> datetime (aware, UTC)
        """When it was measured, as a point in time: profiles are ordered by this, never by the text (an offset of
        +23:59 sorts after a fresh UTC stamp as text, though it is a day older)."""
        return created_time(self.created)

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def sampler(self, name: str) -> SamplerOverhead:
        for s in self.samplers:
            if s.name == name:
                return s
        raise ProfileError(
            f"profile '{self.id}' has no overhead for sampler '{name}' (it has: {', '.join(s.name for s in self.samplers)})"
        )

    @property
    def device_name(self) -> str:
        return str(self.device.get("name") or "unknown device")

    @property
    def device_key(self) -> str:
        """What identifies 'the same kind of machine': device name plus, for CPUs, the core count."""
        return device_key(self.device)

    @property
    def id(self) -> str:
        """A readable, stable name: date, device, settings and the run's token. Also the file stem in the user
        folder."""
        dev = re.sub(r"[^a-z0-9]+", "-", self.device_name.lower()).strip("-")[:40] or "device"
        stamp = re.sub(r"[^0-9]", "", self.created)[:14]
        s = self.settings
        run = f"-{self.run}" if self.run else ""
        return f"{stamp}-{dev}-{s.resolution}px-b{s.batch}{'-cfg' if s.cfg else ''}-{s.dtype}-{s.mode}{run}"

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "created": self.created,
            "command": self.command,
            "notes": self.notes,
            "complete": self.complete,
            **({"run": self.run} if self.run else {}),
            "wall_seconds": self.wall_seconds,
            "device": self.device,
            "settings": self.settings.to_json(),
            "samplers": [s.to_json() for s in self.samplers],
            "models": [m.to_json() for m in self.models],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Profile:
        d = obj(data, "profile")
        schema = d.get("schema")
        if not isinstance(schema, str):
            raise ProfileError("not an ldmpick profile (no 'schema' field)")
        version = READABLE_SCHEMAS.get(schema)
        if version is None:
            if schema.startswith(SCHEMA_FAMILY):
                raise ProfileError(f"unsupported profile schema version '{schema[:60]}' (this ldmpick reads "
                                   f"{', '.join(READABLE_SCHEMAS)})")
            raise ProfileError(f"not an ldmpick profile (schema '{schema[:60]}')")
        device = validate_device(d.get("device"))
        models_raw = d.get("models")
        samplers_raw = d.get("samplers")
        for key, raw, cap in (("models", models_raw, MAX_MODELS), ("samplers", samplers_raw, MAX_SAMPLERS)):
            if not isinstance(raw, list):
                raise ProfileError(f"{key} must be a list")
            if len(raw) > cap:
                raise ProfileError(f"{key} has {len(raw)} entries; a profile holds at most {cap}")
        models = [ModelLatency.from_json(m, f"models[{i}]", version) for i, m in enumerate(models_raw)]
        samplers = [SamplerOverhead.from_json(s, f"samplers[{i}]") for i, s in enumerate(samplers_raw)]
        for what, names in (("model", [m.name for m in models]), ("sampler", [s.name for s in samplers])):
            if len(set(names)) != len(names):
                raise ProfileError(f"duplicate {what} names in profile")
        created = check_created(nonempty_str(d, "created", "profile"))
        if version == 1:  # one set of fixed parts, measured with the first model's configs, shared by all
            fixed = obj(d.get("fixed"), "fixed")
            te, vae = fixed.get("text_encoder"), fixed.get("vae_decode")
            te_stats = LatencyStats.from_json(te, "fixed.text_encoder") if te is not None else None
            vae_stats = LatencyStats.from_json(vae, "fixed.vae_decode") if vae is not None else None
        wall = d.get("wall_seconds")
        complete = d.get("complete", True)
        run = d.get("run", "")
        if not isinstance(run, str) or not RUN_TOKEN.fullmatch(run):
            raise ProfileError("run must be a short token of lowercase letters and digits (at most 16)")
        if not isinstance(complete, bool):
            raise ProfileError("complete must be true or false")
        profile = cls(
            settings=Settings.from_json(d.get("settings")),
            device=device,
            models=models,
            samplers=samplers,
            created=created,
            command=opt_str(d, "command", "profile") or "",
            notes=opt_str(d, "notes", "profile") or "",
            wall_seconds=check_latency(wall, "wall_seconds") if wall is not None else None,
            complete=complete,
            run=run,
        )
        if version == 1:
            profile.share_fixed_parts(te_stats, vae_stats)
        else:
            check_builtin_claims(profile)
        return profile


def check_builtin_claims(profile: Profile) -> None:
    """What a profile says of a model this installation defines itself (the paper's family, the demo family, the
    released-model catalogue) must be what the installation knows: its family, whether it is distilled, whether its
    step was measured with the CFG-doubled batch, and that its samplers fit it. An edited or foreign file that marks
    ldm-223m distilled would otherwise make recommend pick lcm for it; ``cfg: false`` on a guided model would halve
    its predicted cost. A one-line ``ProfileError`` names the model and the claim."""
    from ldmpick.models.catalogue import is_builtin, resolve_model
    from ldmpick.models.samplers import SAMPLERS

    for i, m in enumerate(profile.models):
        if not is_builtin(m.name):
            continue
        try:
            spec = resolve_model(m.name)
        except LdmpickError:  # a demo model not installed here: nothing to check against
            continue
        where = f"models[{i}] ('{m.name}', a model this installation defines)"
        if m.family != spec.family:
            raise ProfileError(f"{where}: family '{m.family}', but it is of family '{spec.family}'; the file is "
                               "wrong or edited")
        if m.distilled != spec.distilled:
            raise ProfileError(f"{where}: distilled {str(m.distilled).lower()}, but it is "
                               f"{'' if spec.distilled else 'not '}distilled; the file is wrong or edited")
        want_cfg = spec.adapter.uses_cfg(spec, profile.settings.cfg)
        if m.cfg is not None and m.cfg != want_cfg:
            raise ProfileError(f"{where}: cfg {str(m.cfg).lower()}, but in a profile measured "
                               f"{'with' if profile.settings.cfg else 'without'} CFG its step "
                               f"{'doubles' if want_cfg else 'does not double'} the batch; the file is wrong or edited")
        unfit = [name for name in (m.samplers or []) if name in SAMPLERS  # (unknown names: the library's check)
                 and spec.adapter.misfit_reason(spec, name) is not None]
        if unfit:
            raise ProfileError(f"{where}: sampler(s) {', '.join(unfit)} cannot run it "
                               f"({spec.adapter.misfit_reason(spec, unfit[0])}); the file is wrong or edited")



# ---------------------------------------------------------------------------------------------- reading


def parse_profile_text(text: str, where: str = "profile") -> Profile:
    """Parse and validate profile JSON text. Every problem is a one-line ``ProfileError``."""
    from ldmpick.files.reader import parse_json

    if len(text) > MAX_FILE_BYTES:
        raise ProfileError(f"{where} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; refusing it")
    check_json_object_text(text, where)
    return profile_from_data(parse_json(text, where, MAX_JSON_DEPTH, ProfileError), where)


def load_profile(path: Path) -> Profile:
    """Read and validate the profile file ``path`` (a regular file, at most ``MAX_FILE_BYTES``)."""
    from ldmpick.files.reader import parse_json, read_text_file

    text = read_text_file(Path(path), "profile", MAX_FILE_BYTES, ProfileError)
    check_json_object_text(text, f"'{path}'")
    return profile_from_data(parse_json(text, f"profile '{path}'", MAX_JSON_DEPTH, ProfileError), f"'{path}'")


def check_json_object_text(text: str, where: str) -> None:
    """Text that is not JSON from its first character on is another kind of file (a CSV or Markdown export, a web
    page), not a truncated download, and is named as such. Anything else is left to ``parse_json``."""
    start = text.lstrip("\ufeff \t\r\n")
    if not start or start[0] in "{[":
        return
    try:
        json.loads(start)
        return  # a JSON number or string: 'must be a JSON object' says the rest
    except ValueError:
        pass
    first = start.splitlines()[0]
    shown = first if len(first) <= 40 else first[:40] + "..."
    raise ProfileError(f"{where} is not a JSON profile (not valid JSON: it begins {shown!r}); share profiles as the "
                       "JSON 'ldmpick profiles export ID' writes (its CSV and Markdown formats are for reading)")


def profile_from_data(data: Any, where: str) -> Profile:
    try:
        return Profile.from_json(data)
    except ProfileError as exc:
        raise ProfileError(f"{where}: {exc}") from None
