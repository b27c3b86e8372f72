"""Plots: the points a plot draws (``data``) and the figure of quality against measured latency (``figure``).
Imports ``planning`` and the wings below it."""
