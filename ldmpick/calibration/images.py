"""How calibration makes its images: diffusers' own pipeline call with the sampler swapped in, each image seeded
by its index, so that every configuration starts from the same noise. Used by the driver and by the shard measurer
(the unit of work), which both sit above it."""

from __future__ import annotations

from typing import Any

PROMPT_SEED_OFFSET = 20_000  # prompt i of a calibration is seeded with seed + PROMPT_SEED_OFFSET + i


def _to_uint8(images: Any) -> Any:
    import numpy as np

    return (np.clip(np.asarray(images), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def generate_images(pipe: Any, prompts: list[str], sampler: str, steps: int, guidance: float, seed: int,
                    batch: int, resolution: int, extra: dict[str, Any] | None = None) -> Any:
    """``len(prompts)`` images (uint8 ``(n, h, w, 3)``) with diffusers' own pipeline call and the sampler swapped
    in; image ``i`` is seeded with ``seed + i`` whatever the batch, so every configuration starts from the same
    noise. ``extra``: the family's own call arguments (they may replace ``guidance_scale``); those the pipeline's
    ``__call__`` does not take are left out."""
    import inspect

    import numpy as np
    import torch

    from ldmpick.models.samplers import make_scheduler

    pipe.scheduler = make_scheduler(sampler, dict(pipe.scheduler.config))
    device = pipe.device
    accepted = inspect.signature(pipe.__call__).parameters
    kwargs = {k: v for k, v in {"guidance_scale": guidance, **(extra or {})}.items() if k in accepted}
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        gens = [torch.Generator(device).manual_seed(seed + start + i) for i in range(len(chunk))]
        with torch.no_grad():
            res = pipe(prompt=chunk, num_inference_steps=steps, generator=gens, height=resolution, width=resolution,
                       output_type="np", **kwargs)
        out.append(_to_uint8(res.images))
    return np.concatenate(out)
