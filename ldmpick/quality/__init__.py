"""Quality: the law that predicts a configuration's quality with an interval (``law``; no scipy), the scales and
published series (``scales``), the quality table with citations (``table``), the fit (``fit``, the only scipy
importer) and refitting a user's law (``refit``). Imports ``models``, ``demo`` and ``files``."""
