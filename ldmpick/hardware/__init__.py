"""Device facts and execution: the fingerprint of the machine a number was measured on (``fingerprint``) and how a
denoiser runs on it (``execution``: device, dtype, execution modes, thread policy, free memory, the denoiser runner).
Below profiles, measurement and generation, which all use it. Imports only ``files``."""
