"""Measurement: what a denoiser step, the text encoders, the VAE decode and each sampler cost on this device
(``profiler``). Imports ``profiles``, ``models``, ``hardware`` and ``files``."""
