"""The Ray transport: the same shards and profile measurements, spread over a Ray cluster (``ray_cluster``).
It runs measurements and calibration shards, so it sits above ``measurement`` and ``calibration``."""
