"""Jobs: one ``profile`` run (``profile``: partial files, resume, local or on a cluster) and one ``calibrate`` run
(``calibrate``). They use both the measurement wings and the Ray transport, so they sit above both; only ``cli``
imports them."""
