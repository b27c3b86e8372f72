"""ldmpick: pick the latent-diffusion model size, sampler and step count for a latency budget.

The package is a house of wings, one sub-package per concept, in layers (docs/architecture.md; the contract is
``[tool.importlinter]`` in pyproject.toml)."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent  # the installed package: its data/, demo_models/, reference profiles
