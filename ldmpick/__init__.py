"""ldmpick: pick the latent-diffusion model size, sampler and step count for a latency budget."""

__version__ = "0.1.0"
