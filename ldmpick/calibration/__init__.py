"""Calibration: measuring quality for real. The driver (``driver``: requests, partial files, the quality rows),
the unit of work (``shards``: one configuration, one range of images), how its images are made (``images``) and the
image-quality metrics (``image_quality``: Fréchet distance, the world judge) and the reference-free scorers
(``scorers``: CLIP score, preference, self-agreement with the model's own many-step image; prompt sets). Imports ``generation`` and the wings
below it; never ``planning``, ``transport`` or ``jobs``."""
