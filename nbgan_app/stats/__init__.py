"""Summary statistics of count cubes (power spectrum, mass and peak histograms) and scores.

All statistics work on counts (after the backward transform), take one field
or a batch (batch axis first), 2-D or 3-D, and state their units and
conventions in their module docstrings. `registry` lists them once, with the
names, titles, axes and labels that every result, figure and table uses.
"""

from nbgan_app.stats.histograms import mass_histogram, peak_histogram
from nbgan_app.stats.power_spectrum import power_spectrum
from nbgan_app.stats.scores import compare
from nbgan_app.stats.summary import summary

__all__ = ["compare", "mass_histogram", "peak_histogram", "power_spectrum", "summary"]
