"""The demo world and its training: the procedural shapes world the shipped demo family draws (``world``) and the
recipe that trains the family (``training``; torch and diffusers are imported lazily). Imports only ``files``."""
