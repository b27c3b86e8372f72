"""Any diffusers text-to-image pipeline that has no adapter here and follows diffusers' conventions: "generic".

A pipeline qualifies when its class is a ``DiffusionPipeline`` that diffusers exports, its ``__call__`` takes the
usual arguments (``prompt``, ``num_inference_steps``, ``height``, ``width``, ``generator``, ``output_type``), its
denoiser is a ``transformer`` component, it has a ``vae`` and its scheduler is one of ldmpick's samplers. Nothing of
its inner workings is assumed: ``ldmpick.measurement.pipeline_call.capture_generic`` runs the pipeline's own
``__call__`` once (real weights, its own scheduler) and keeps what it fed each part — the denoiser's keyword
arguments, the latents its VAE decode got, each text encoder's token ids and call count, the arguments of its
``set_timesteps`` — in ``CAPTURES``. This adapter answers the profiler from that capture, so a step is replayed on
exactly the inputs the pipeline makes, in any execution mode the capture allows. A generic model runs its own
scheduler only (ldmpick cannot know which others its pipeline can take).

A pipeline that does not follow the convention is refused in one line that says why (``convention_problem``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ldmpick.models.families.base import Family, ModelFacts, TextEncoder, encoder_label

CALL_PARAMETERS = ("prompt", "num_inference_steps", "height", "width", "generator", "output_type")
GUIDE = "docs/families.md (\"adding a family\")"


@dataclass
class Captured:
    """What one call of a pipeline fed its parts (tensors kept on the device they were made on)."""

    denoiser_kwargs: dict[str, Any]
    batch: int  # the images of the call
    denoiser_batch: int  # the first denoiser evaluation's batch (2 x images when CFG doubles it)
    evals_per_step: int  # denoiser evaluations per scheduler step (2: separate conditional and unconditional calls)
    decode_latents: Any
    encoder_ids: dict[str, Any] = field(default_factory=dict)  # component -> the token ids of its first call
    encoder_calls: dict[str, int] = field(default_factory=dict)  # component -> forward calls per image batch
    timestep_kwargs: dict[str, Any] = field(default_factory=dict)  # set_timesteps' arguments but the step count


CAPTURES: dict[tuple[str, int, bool], Captured] = {}  # (model folder, resolution, cfg) -> its capture


def model_key(spec: ModelFacts) -> str:
    """What identifies a model's captures: its folder (or its name without one)."""
    return str(getattr(spec, "path", "") or spec.name)


def capture_key(spec: ModelFacts, resolution: int, cfg: bool) -> tuple[str, int, bool]:
    return (model_key(spec), resolution, cfg)


def convention_problem(pipeline_class: str, components: dict[str, str]) -> str | None:
    """Why the pipeline class ``pipeline_class`` (with ``components``: name -> class from model_index.json) cannot
    be served generically, or None when it can."""
    import inspect

    import diffusers

    cls = getattr(diffusers, pipeline_class, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, diffusers.DiffusionPipeline):
        return f"'{pipeline_class[:80]}' is not a pipeline class of diffusers {diffusers.__version__}"
    params = inspect.signature(cls.__call__).parameters
    missing = [p for p in CALL_PARAMETERS if p not in params]
    if missing:
        return f"its __call__ takes no {', '.join(missing)} (not diffusers' usual text-to-image call)"
    if "transformer" not in components:
        return ("its denoiser is not a 'transformer' component (the generic path serves transformer pipelines; a "
                "UNet pipeline needs an adapter)")
    if "vae" not in components:
        return "it has no 'vae' component"
    image = params.get("image")
    if image is not None and image.default is inspect.Parameter.empty:
        return "its __call__ needs an input image (not text-to-image)"
    return None


class GenericFamily(Family):
    name = "generic"
    description = ("a diffusers text-to-image pipeline with no ldmpick adapter, measured through its own call "
                   "(its own scheduler only)")
    pipelines = ()  # never chosen by pipeline class: ``families.family_for`` falls back to it
    denoiser_component = "transformer"
    denoiser_classes = ()
    samplers = ()
    fast_modes = ("eager",)  # a capture replays one call's tensors: no graph is captured around the pipeline's loop
    default_guidance = 5.0
    pipeline_multiple = 16
    required_components = ("vae",)

    def denoiser_class(self, spec: ModelFacts) -> str:
        return spec.component_classes[self.denoiser_component]

    def _capture(self, spec: ModelFacts, resolution: int | None = None, cfg: bool | None = None) -> Captured | None:
        for (path, res, guided), captured in CAPTURES.items():
            if path == model_key(spec) and resolution in (None, res) and cfg in (None, guided):
                return captured
        return None

    def _captured(self, spec: ModelFacts, resolution: int, batch: int) -> Captured:
        """The capture at ``resolution`` whose first denoiser evaluation had ``batch`` rows."""
        for cfg in (True, False):
            c = self._capture(spec, resolution, cfg)
            if c is not None and c.denoiser_batch == batch:
                return c
        raise not_captured(spec, resolution, batch)

    # ------------------------------------------------------------------ samplers: its own scheduler only
    def own_sampler(self, spec: ModelFacts) -> str | None:
        from ldmpick.models.samplers import sampler_for_scheduler

        return sampler_for_scheduler(spec.component_classes.get("scheduler") or "", spec.scheduler_config)

    def fitting_samplers(self, spec: ModelFacts) -> list[str]:
        own = self.own_sampler(spec)
        return [own] if own else []

    def misfit_reason(self, spec: ModelFacts, name: str) -> str | None:
        if name in self.fitting_samplers(spec):
            return None
        return "a generic pipeline (no adapter) runs its own scheduler only"

    # ------------------------------------------------------------------ guidance
    def uses_cfg(self, spec: ModelFacts, cfg: bool) -> bool:
        """Whether its pipeline doubles the denoiser batch (as captured; a pipeline that runs the unconditional
        batch as a second call is costed by its measured call, whose slope counts both)."""
        c = self._capture(spec, cfg=cfg)
        return cfg if c is None else c.denoiser_batch > c.batch

    # ------------------------------------------------------------------ text encoders, as the call ran them
    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        c = self._capture(spec)
        out = []
        for comp in sorted(k for k in spec.components if k.startswith("text_encoder")):
            cls = spec.component_classes.get(comp)
            if not cls:
                continue
            cfg = spec.components[comp]
            ids = c.encoder_ids.get(comp) if c is not None else None
            seq = int(ids.shape[-1]) if ids is not None else self.encoder_seq_len(spec, comp, cls, cfg)
            out.append(TextEncoder(comp, cls, cfg, seq, encoder_label(cls, cfg)))
        return out

    def encoder_calls(self, spec: ModelFacts, cfg: bool) -> int:
        c = self._capture(spec, cfg=cfg)
        if c is None or not c.encoder_calls:
            return super().encoder_calls(spec, cfg)
        return max(c.encoder_calls.values())

    # ------------------------------------------------------------------ the denoiser and the VAE, as captured
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        c = self._captured(spec, resolution, batch)
        return {k: _on(v, device, dtype) for k, v in c.denoiser_kwargs.items()}

    def decode_latents(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> Any:
        for cfg in (True, False):
            c = self._capture(spec, resolution, cfg)
            if c is not None and c.decode_latents.shape[0] == batch:
                return _on(c.decode_latents, device, dtype)
        raise not_captured(spec, resolution, batch)

    def decode(self, vae: Any, latents: Any) -> Any:
        return vae.decode(latents, return_dict=False)[0]  # the captured latents are already scaled and shifted

    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int) -> dict[str, Any]:
        c = self._capture(spec, resolution)
        return dict(c.timestep_kwargs) if c is not None else {}


def not_captured(spec: ModelFacts, resolution: int, batch: int) -> Exception:
    from ldmpick.files.errors import ModelError

    return ModelError(f"'{spec.name}' ({spec.pipeline_class}, generic): its pipeline call was not captured at "
                      f"{resolution} px, batch {batch}; profile it with its weights ('ldmpick profile')")


def _on(x: Any, device: str, dtype: Any) -> Any:
    """``x`` on ``device``, floating-point tensors in ``dtype`` (integer ids and masks keep theirs)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_on(v, device, dtype) for v in x)
    if isinstance(x, dict):
        return {k: _on(v, device, dtype) for k, v in x.items()}
    return x


FAMILY = GenericFamily()
