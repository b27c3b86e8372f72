"""What every backbone family adapter says about its models.

A ``Family`` knows one kind of diffusers text-to-image pipeline: its components and their classes, how to count
the denoiser's parameters, example denoiser inputs with all conditioning, its text-encoder stack with each
encoder's own sequence length, its VAE decode, how many denoiser evaluations one sampling step costs, its native
resolution and resolution multiple, and which samplers fit it. Adding a family means adding one module under
``ldmpick/models/families/`` and listing it in ``ldmpick/models/families/__init__.py``.

Nothing here imports torch or diffusers at module level (the ``recommend`` path imports the families to name
them); the methods that build or run modules import them lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any, Protocol

from ldmpick.models.samplers import own_schedule_only, runs_schedule




class ModelFacts(Protocol):
    """What an adapter reads of a model: ``models.catalogue.ModelSpec`` is one. The adapters sit below the
    catalogue (it chooses an adapter for every model it resolves), so they know a model by this shape only."""

    name: str
    family: str
    pipeline_class: str
    components: dict[str, dict[str, Any]]
    component_classes: dict[str, str]
    distilled: bool
    max_sequence_length: int | None

    @property
    def adapter(self) -> Family: ...

    @property
    def cross_attention_dim(self) -> int: ...

    @property
    def scheduler_config(self) -> dict[str, Any]: ...


# Component names that hold no weights (configs or tokenizers only).
NON_WEIGHT_COMPONENTS = frozenset({"scheduler", "tokenizer", "tokenizer_2", "tokenizer_3", "feature_extractor",
                                   "safety_checker", "image_encoder"})


@dataclass(frozen=True)
class TextEncoder:
    """One encoder of a family's text stack, as the pipeline runs it."""

    component: str  # "text_encoder_2"
    class_name: str  # transformers class, e.g. "CLIPTextModelWithProjection"
    config: dict[str, Any]
    seq_len: int  # tokens the pipeline feeds it (its own length: CLIP 77, T5 256/300/512, Gemma 300)
    label: str  # "CLIP-L", "OpenCLIP-bigG", "T5-XXL", "Gemma-2"

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size") or 1000)


# Ceilings on the size fields of a component's config, far above every released model (the largest shipped values:
# hidden_size 4096 (d_model), intermediate_size 10240 (d_ff), 38 layers, 3 layers per block, 10 transformer layers
# per block, vocab 256k). A config past one would build a module of absurd size (hidden_size 65536: 26 GB of text
# encoder) or take minutes just to count (layers_per_block 20000): it is refused before anything is built.
SIZE_LIMITS: dict[str, int] = {
    "hidden_size": 16384, "d_model": 16384, "intermediate_size": 65536, "d_ff": 65536, "d_kv": 1024,
    "head_dim": 1024, "attention_head_dim": 1024, "cross_attention_head_dim": 1024,
    "num_hidden_layers": 256, "num_layers": 256, "num_single_layers": 256, "num_decoder_layers": 256,
    "num_attention_heads": 512, "num_key_value_heads": 512, "num_heads": 512, "num_cross_attention_heads": 512,
    "vocab_size": 1_048_576, "max_position_embeddings": 1_048_576, "pos_embed_max_size": 4096,
    "layers_per_block": 16, "encoder_layers_per_block": 16, "decoder_layers_per_block": 16,
    "transformer_layers_per_block": 64, "reverse_transformer_layers_per_block": 64,
    "block_out_channels": 16384, "encoder_block_out_channels": 16384, "decoder_block_out_channels": 16384,
    "cross_attention_dim": 16384, "joint_attention_dim": 16384, "pooled_projection_dim": 16384,
    "caption_channels": 16384, "caption_projection_dim": 16384, "projection_dim": 16384,
    "projection_class_embeddings_input_dim": 65536, "in_channels": 4096, "out_channels": 4096,
    "latent_channels": 4096, "sample_size": 16384, "patch_size": 64, "norm_num_groups": 4096,
    # embedding tables: a UNet with num_class_embeds 10^9 registered as 32 B parameters
    "num_class_embeds": 100_000, "num_embeds_ada_norm": 100_000, "addition_time_embed_dim": 16384,
    "time_embedding_dim": 65536, "time_cond_proj_dim": 16384, "text_embed_dim": 16384,
}
MAX_LIST_LENGTH = 64  # lists of sizes in general
# sizes that divide or multiply a shape: 0 is no model ('patch_size: 0' passed and divided by zero later)
POSITIVE_SIZES = frozenset({"patch_size", "in_channels", "out_channels", "latent_channels", "block_out_channels",
                            "hidden_size", "d_model", "attention_head_dim", "num_attention_heads", "norm_num_groups",
                            "cross_attention_dim", "sample_size", "head_dim", "vocab_size", "layers_per_block"})
# one entry per resolution level: each halves the image (a VAE of 40 levels asked for 2^43-pixel images)
LEVEL_LISTS = frozenset({"block_out_channels", "encoder_block_out_channels", "decoder_block_out_channels",
                         "down_block_types", "up_block_types"})
MAX_LEVELS = 8


def check_config_sizes(config: dict[str, Any], where: str) -> None:
    """Refuse a component config whose size fields are not positive integers within ``SIZE_LIMITS`` (a list field:
    every entry, at most ``MAX_LIST_LENGTH`` of them). Pure Python, instant; raises a one-line ``ModelError``."""
    from ldmpick.files.errors import ModelError

    for key, limit in SIZE_LIMITS.items():
        if key not in config or config[key] is None:
            continue
        value = config[key]
        values = _flat_ints(value)
        if values is None:
            raise ModelError(f"{where}: '{key}' must be an integer or a list of integers (got "
                             f"{json.dumps(value)[:60]})")
        if len(values) > MAX_LIST_LENGTH:
            raise ModelError(f"{where}: '{key}' has {len(values)} entries (at most {MAX_LIST_LENGTH}); refusing a "
                             "config of absurd size")
        if min(values, default=0) < 0:
            raise ModelError(f"{where}: '{key}' must not be negative (got {min(values)})")
        if key in POSITIVE_SIZES and min(values, default=1) == 0:
            raise ModelError(f"{where}: '{key}' must be positive (got 0)")
        if max(values, default=0) > limit:
            raise ModelError(f"{where}: '{key}' is {max(values)}, beyond any real model (at most {limit}); refusing "
                             "a config of absurd size")
    for key in LEVEL_LISTS:
        levels = config.get(key)
        if isinstance(levels, list) and len(levels) > MAX_LEVELS:
            raise ModelError(f"{where}: '{key}' has {len(levels)} resolution levels (at most {MAX_LEVELS}); refusing "
                             "a config of absurd size")


def _flat_ints(value: Any, depth: int = 0) -> list[int] | None:
    """The integers of ``value`` (an int, or a list of ints or of lists of ints), or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return [int(value)]
    if isinstance(value, (list, tuple)) and depth < 2:
        out: list[int] = []
        for v in value:
            inner = _flat_ints(v, depth + 1)
            if inner is None:
                return None
            out += inner
        return out
    return None


def constructor_args(config: dict[str, Any]) -> dict[str, Any]:
    """Drop diffusers/transformers bookkeeping keys (``_class_name`` ...) from a saved config."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


@lru_cache(maxsize=128)
def _count_params(library: str, class_name: str, config_json: str) -> int:
    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # released configs carry keys a class ignores (a notice, not an error)
    if library == "transformers":
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
    cls = getattr(import_module(library), class_name)
    config = json.loads(config_json)
    with torch.device("meta"):
        module = cls(cls.config_class(**config)) if library == "transformers" else cls.from_config(config)
    return sum(p.numel() for p in module.parameters())


def count_params(library: str, class_name: str, config: dict[str, Any], cached: bool = True) -> int:
    """Parameters of a ``diffusers`` or ``transformers`` module built from ``config`` on torch's meta device (no
    memory, no weights). A config the class cannot be built from is a one-line ``ModelError``.

    Counting imports diffusers and builds the module (a second or more); counts are kept by config digest in
    ``ParamCountCache`` (shipped for the built-in models, and the user's for the rest), so ``models list`` does not
    rebuild every model each time. ``cached=False`` always counts (tests of the shipped cache use it)."""
    from ldmpick.files.errors import ModelError

    config_json = json.dumps(constructor_args(config), sort_keys=True)
    key = ParamCountCache.key(library, class_name, config_json)
    if cached:
        known = ParamCountCache.lookup(key)
        if known is not None:
            return known
    try:
        n = _count_params(library, class_name, config_json)
    except AttributeError:
        raise ModelError(f"{library} has no class '{class_name}'") from None
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, RuntimeError, AssertionError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise ModelError(f"cannot build {class_name} from its config ({exc.__class__.__name__}: {message})") from None
    if cached:
        ParamCountCache.remember(key, n)
    return n


class ParamCountCache:
    """Parameter counts by ``sha256(library, class, config)``: ``ldmpick/data/param_counts.json`` for the built-in
    models (``scripts/build_param_counts.py``; a test recounts every entry) and ``<data>/cache/param_counts.json``
    for the user's models (written atomically; a missing or unreadable cache is simply recounted)."""

    _shipped: dict[str, int] | None = None
    _user: dict[str, int] | None = None
    _user_from: Any = None  # the user cache file _user was read from (LDMPICK_HOME may change: tests)
    MAX_BYTES = 4 * 1024 * 1024

    @staticmethod
    def key(library: str, class_name: str, config_json: str) -> str:
        import hashlib

        return hashlib.sha256(f"{library}|{class_name}|{config_json}".encode()).hexdigest()[:24]

    @staticmethod
    def shipped_path() -> Any:

        from ldmpick import PACKAGE_DIR

        return PACKAGE_DIR / "data" / "param_counts.json"

    @staticmethod
    def user_path() -> Any:
        from ldmpick.files.storage import data_dir

        return data_dir() / "cache" / "param_counts.json"

    @classmethod
    def _read(cls, path: Any) -> dict[str, int]:
        from ldmpick.files.errors import UsageError
        from ldmpick.files.reader import read_json_file

        try:
            doc = read_json_file(path, "parameter-count cache", max_bytes=cls.MAX_BYTES)
        except UsageError:
            return {}
        counts = doc.get("counts") if isinstance(doc, dict) else None
        if not isinstance(counts, dict):
            return {}
        return {k: v for k, v in counts.items() if isinstance(k, str) and isinstance(v, int) and 0 <= v}

    @classmethod
    def lookup(cls, key: str) -> int | None:
        if cls._shipped is None:
            cls._shipped = cls._read(cls.shipped_path())
        if key in cls._shipped:
            return cls._shipped[key]
        path = cls.user_path()
        if cls._user is None or cls._user_from != path:
            cls._user, cls._user_from = cls._read(path), path
        return cls._user.get(key)

    @classmethod
    def remember(cls, key: str, n: int) -> None:
        from ldmpick.files.errors import LdmpickError
        from ldmpick.files.storage import atomic_write_json

        if cls._shipped is not None and key in cls._shipped:
            return
        path = cls.user_path()
        counts = dict(cls._read(path))
        counts[key] = n
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"schema": "ldmpick.param-counts/1", "counts": counts})
        except (OSError, LdmpickError):
            return  # a cache; counting again next time is the only cost
        cls._user, cls._user_from = counts, path


MAX_COMPONENT_PARAMS = 100_000_000_000  # 100 B: several times the largest released denoiser or text encoder


def module_configs(spec: ModelFacts) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each module of ``spec`` (denoiser, text encoders, VAE) as (library, class name, config)."""
    adapter = spec.adapter
    modules = {adapter.denoiser_component: ("diffusers", adapter.denoiser_class(spec), adapter.denoiser_config(spec))}
    for enc in adapter.text_encoders(spec):
        modules[enc.component] = ("transformers", enc.class_name, enc.config)
    if adapter.vae_config(spec):
        modules["vae"] = ("diffusers", adapter.vae_class(spec), adapter.vae_config(spec))
    return modules


def component_params(spec: ModelFacts) -> dict[str, int]:
    """Parameters of each module of ``spec`` (denoiser, text encoders, VAE), counted on torch's meta device; a
    module over ``MAX_COMPONENT_PARAMS`` or one that cannot be built is a one-line ``ModelError``. Run it before a
    model is registered or built for real."""
    from ldmpick.files.errors import ModelError

    counts = {comp: count_params(*module) for comp, module in module_configs(spec).items()}
    for comp, n in counts.items():
        if n > MAX_COMPONENT_PARAMS:
            raise ModelError(f"model '{spec.name}': its {comp} would have {n / 1e9:.0f} B parameters (at most "
                             f"{MAX_COMPONENT_PARAMS / 1e9:.0f} B); refusing a config of absurd size")
    return counts


def encoder_label(class_name: str, config: dict[str, Any]) -> str:
    """A readable name for a text encoder from its class and width."""
    width = int(config.get("hidden_size") or config.get("d_model") or 0)
    if class_name.startswith("CLIP"):
        return {768: "CLIP-L", 1024: "OpenCLIP-H", 1280: "OpenCLIP-bigG"}.get(width, f"CLIP-{width}")
    if class_name.startswith("T5"):
        return "T5-XXL" if width == 4096 else f"T5-{width}"
    if class_name.startswith("Gemma"):
        return "Gemma-2" if "Gemma2" in class_name else "Gemma"
    return class_name


class Family:
    """Base adapter. Subclasses set the class attributes and override what differs."""

    name: str = ""
    description: str = ""
    pipelines: tuple[str, ...] = ()  # model_index.json _class_name values this family serves
    denoiser_component: str = "unet"
    denoiser_classes: tuple[str, ...] = ()
    flow_matching: bool = False  # flow-matching families get flow samplers only
    # samplers that fit (names from ldmpick.models.samplers); few-step distilled ones are added by distilled_samplers
    samplers: tuple[str, ...] = ()
    distilled_samplers: tuple[str, ...] = ()  # only for models distilled for them (LCM, SCM)
    fast_modes: tuple[str, ...] = ("eager", "cudagraph", "compile")
    default_guidance: float = 7.5
    # what the diffusers pipeline's check_inputs asks image sides to be multiples of, beyond the latent grid (the
    # SD, SDXL, LCM and PixArt pipelines: 8, whatever the VAE factor; a test reads it from diffusers)
    pipeline_multiple: int = 1
    # text encoders the pipeline cannot run without (a null or missing one is refused when the model is added: an
    # SDXL folder without text_encoder_2 was profiled with the wrong stack); those in ``optional_components`` may be
    # listed as [null, null] in model_index.json and are then loaded as None (SD3 without its T5)
    required_components: tuple[str, ...] = ("text_encoder",)
    optional_components: tuple[str, ...] = ()

    # ------------------------------------------------------------------ parameters and shapes
    def denoiser_config(self, spec: ModelFacts) -> dict[str, Any]:
        return spec.components[self.denoiser_component]

    def denoiser_class(self, spec: ModelFacts) -> str:
        cls = spec.component_classes.get(self.denoiser_component)
        return cls or self.denoiser_classes[0]

    def count_params(self, spec: ModelFacts) -> int:
        """Denoiser parameters, counted by building it on torch's meta device (no memory, no weights)."""
        return count_params("diffusers", self.denoiser_class(spec), self.denoiser_config(spec))

    def vae_config(self, spec: ModelFacts) -> dict[str, Any]:
        return spec.components.get("vae", {})

    def vae_class(self, spec: ModelFacts) -> str:
        return spec.component_classes.get("vae") or "AutoencoderKL"

    def vae_scale_factor(self, spec: ModelFacts) -> int:
        cfg = self.vae_config(spec)
        blocks = cfg.get("block_out_channels") or cfg.get("encoder_block_out_channels") or [0, 0, 0, 0]
        return 2 ** (len(blocks) - 1)

    def latent_channels(self, spec: ModelFacts) -> int:
        return int(self.vae_config(spec).get("latent_channels") or self.denoiser_config(spec).get("in_channels", 4))

    def patch_size(self, spec: ModelFacts) -> int:
        """How many latent pixels one denoiser token (or the UNet's total downsampling) covers per side."""
        return int(self.denoiser_config(spec).get("patch_size") or 1)

    def resolution_multiple(self, spec: ModelFacts) -> int:
        """Image sides must be multiples of this: the latent grid's (VAE factor x patch size) and the pipeline's."""
        import math

        return math.lcm(self.vae_scale_factor(spec) * self.patch_size(spec), self.pipeline_multiple)

    def native_resolution(self, spec: ModelFacts) -> int:
        return int(self.denoiser_config(spec).get("sample_size") or 64) * self.vae_scale_factor(spec)

    def latent_size(self, spec: ModelFacts, resolution: int) -> int:
        return resolution // self.vae_scale_factor(spec)

    def generated_resolution(self, spec: ModelFacts, resolution: int) -> int:
        """The square side the pipeline really generates when asked for ``resolution`` (HiDream rescales every
        request to its native area)."""
        return resolution

    def min_steps(self, spec: ModelFacts) -> int:
        """The fewest steps the model's own scheduler can run: a flow schedule stretched to a terminal shift
        (``shift_terminal``, Qwen-Image) divides by zero at one step in diffusers (NaN timesteps)."""
        return 2 if (spec.scheduler_config or {}).get("shift_terminal") else 1

    # ------------------------------------------------------------------ guidance
    def guidance_distilled(self, spec: ModelFacts) -> bool:
        """True when guidance is an input of the denoiser (one evaluation per step), not a doubled batch."""
        return False

    def runs_unguided(self, spec: ModelFacts) -> bool:
        """A model whose own default guidance is at most 1 (SDXL-Turbo; an SDXL-Lightning checkpoint registered with
        ``models add --guidance 0``) runs without classifier-free guidance: diffusers guides only above 1."""
        g = getattr(spec, "default_guidance", None)
        return g is not None and g <= 1

    def uses_cfg(self, spec: ModelFacts, cfg: bool) -> bool:
        """Whether classifier-free guidance doubles the denoiser batch for this model when the user asks for it (a
        profile measured with CFG measures a model that runs unguided by default without it, as it runs)."""
        return cfg and not self.guidance_distilled(spec) and not self.runs_unguided(spec)

    def evals_per_step(self, spec: ModelFacts, cfg: bool) -> int:
        """Denoiser batch multiplier of one sampling step (CFG doubles it unless the model embeds guidance)."""
        return 2 if self.uses_cfg(spec, cfg) else 1

    # ------------------------------------------------------------------ samplers
    def fitting_samplers(self, spec: ModelFacts) -> list[str]:
        """Samplers that fit this model: the family's (``family_samplers``) that can run its noise schedule (a
        zero-terminal-SNR model rules out the samplers whose diffusers class cannot rescale its betas)."""
        return [s for s in self.family_samplers(spec) if runs_schedule(s, spec.scheduler_config or {})]

    def sampler_misfit(self, spec: ModelFacts, name: str) -> str | None:
        """Why the registered sampler ``name`` cannot run this model, as a one-line error (None: it fits)."""
        why = self.misfit_reason(spec, name)
        if why is None:
            return None
        takes = ", ".join(self.fitting_samplers(spec)) or "only its own scheduler"
        return f"sampler '{name}' does not fit '{spec.name}' ({spec.family} family: {why}); it takes: {takes}"

    def misfit_reason(self, spec: ModelFacts, name: str) -> str | None:
        """Why sampler ``name`` cannot run this model, in a few words (None: it fits). No diffusers import."""
        from ldmpick.models.samplers import get_sampler

        if name in self.fitting_samplers(spec):
            return None
        sampler = get_sampler(name)
        own = own_schedule_only(spec.scheduler_config or {})
        if own:
            return (f"its own {own} schedule, which no ldmpick sampler reproduces; leave out --sampler to run it with "
                    "its own scheduler")
        if sampler.flow != self.flow_matching:
            return "a flow-matching model" if self.flow_matching else "not a flow-matching model"
        if sampler.distilled_only:
            return "not distilled for it"
        if name in self.family_samplers(spec):
            return "its diffusers class cannot rescale the betas of this zero-terminal-SNR model"
        return f"not one of the {spec.family} family's"

    def family_samplers(self, spec: ModelFacts) -> list[str]:
        """The family's samplers for this model: its own, plus the distilled ones when the model is distilled."""
        out = list(self.samplers)
        if spec.distilled:
            out += [s for s in self.distilled_samplers if s not in out]
        return out

    # ------------------------------------------------------------------ text encoders
    def text_encoders(self, spec: ModelFacts) -> list[TextEncoder]:
        """The text-encoder stack in the order the pipeline runs it."""
        out = []
        for comp in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            if comp in spec.components:
                cls = spec.component_classes.get(comp) or "CLIPTextModel"
                cfg = spec.components[comp]
                out.append(TextEncoder(comp, cls, cfg, self.encoder_seq_len(spec, comp, cls, cfg),
                                       encoder_label(cls, cfg)))
        return out

    def encoder_seq_len(self, spec: ModelFacts, component: str, class_name: str, config: dict[str, Any]) -> int:
        if class_name.startswith("CLIP"):
            return int(config.get("max_position_embeddings") or 77)
        return int(spec.max_sequence_length or 256)

    def encode(self, spec: ModelFacts, encoder: TextEncoder, module: Any, input_ids: Any) -> Any:
        """One forward pass of ``encoder`` (built as ``module``) on ``input_ids`` as the pipeline calls it (a family
        whose pipeline asks for hidden states or an attention mask overrides this)."""
        return module(input_ids)

    def encoder_calls(self, spec: ModelFacts, cfg: bool) -> int:
        """Forward passes of each encoder per prompt: the prompt and, with CFG, the negative prompt."""
        return 2 if self.uses_cfg(spec, cfg) else 1

    # ------------------------------------------------------------------ example inputs (profiling)
    def denoiser_inputs(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> dict[str, Any]:
        """Keyword arguments of one denoiser evaluation at ``batch`` (CFG doubling already applied by the caller),
        with every conditioning input the pipeline passes, shaped as the pipeline shapes them."""
        raise NotImplementedError

    # ------------------------------------------------------------------ VAE decode
    def vae_decode_dtype(self, spec: ModelFacts, dtype: str) -> str:
        """The dtype the pipeline decodes in (SDXL's VAE is upcast to fp32 under fp16)."""
        if dtype == "fp16" and self.vae_config(spec).get("force_upcast"):
            return "fp32"
        return dtype

    def decode_latents(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> Any:
        """Example latents as the VAE decoder receives them."""
        import torch

        side = self.latent_size(spec, resolution)
        return torch.randn(batch, self.latent_channels(spec), side, side, device=device, dtype=dtype)

    def decode(self, vae: Any, latents: Any) -> Any:
        """Run the VAE decode as the pipeline does (scaling and shift included)."""
        cfg = vae.config
        z = latents / cfg.scaling_factor
        shift = getattr(cfg, "shift_factor", None)
        if shift:
            z = z + shift
        return vae.decode(z, return_dict=False)[0]

    def timestep_kwargs(self, spec: ModelFacts, scheduler: Any, resolution: int) -> dict[str, Any]:
        """Extra ``set_timesteps`` arguments: ``mu``, the resolution-dependent shift, for schedulers that use dynamic
        shifting (Flux), computed as the pipeline computes it."""
        cfg = scheduler.config
        if not getattr(cfg, "use_dynamic_shifting", False):
            return {}
        seq = (self.latent_size(spec, resolution) // self.patch_size(spec)) ** 2
        base_seq, max_seq = cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
        base_shift, max_shift = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
        m = (max_shift - base_shift) / (max_seq - base_seq)
        return {"mu": seq * m + base_shift - m * base_seq}

    # ------------------------------------------------------------------ generation
    def pipeline_load_kwargs(self) -> dict[str, Any]:
        return {}

    def call_kwargs(self, spec: ModelFacts, guidance: float, n: int) -> dict[str, Any]:
        """Family-specific keyword arguments of ``pipe(...)``."""
        return {"guidance_scale": guidance}

    def steps_kwargs(self, spec: ModelFacts, steps: int) -> dict[str, Any]:
        """Keyword arguments of ``pipe(...)`` that depend on the step count (SANA-Sprint)."""
        return {}

    def describe(self) -> str:
        return self.description


def unpack_2x2(latents: Any) -> Any:
    """Packed latents (B, (H/2)(W/2), 4C) back to an image of latents (B, C, H, W), as the Flux-style pipelines'
    ``_unpack_latents`` do (Flux, Chroma, Qwen-Image)."""
    b, tokens, c = latents.shape
    side = int(round(tokens ** 0.5))
    return latents.view(b, side, side, c // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c // 4, side * 2, side * 2)


def packed_image_ids(side: int, device: str, dtype: Any) -> Any:
    """The (side x side, 3) position ids of packed latent tokens, (0, row, column), as the Flux-style pipelines'
    ``_prepare_latent_image_ids`` make them (Flux, Chroma)."""
    import torch

    ids = torch.zeros(side, side, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(side, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(side, device=device, dtype=dtype)[None, :]
    return ids.reshape(side * side, 3)


class PackedLatents:
    """The decode side of a family whose latents are packed 2x2 into tokens (Flux, Chroma): example latents as the
    VAE decoder's caller holds them, and the pipeline's unpack before the base decode (scaling, shift)."""

    def decode_latents(self, spec: ModelFacts, batch: int, resolution: int, device: str, dtype: Any) -> Any:
        import torch

        side = self.latent_size(spec, resolution) // 2  # type: ignore[attr-defined]
        return torch.randn(batch, side * side, self.latent_channels(spec) * 4,  # type: ignore[attr-defined]
                           device=device, dtype=dtype)

    def decode(self, vae: Any, latents: Any) -> Any:
        return super().decode(vae, unpack_2x2(latents))  # type: ignore[misc]


def timestep_batch(batch: int, device: str, value: float = 500.0) -> Any:
    import torch

    return torch.full((batch,), value, device=device)
