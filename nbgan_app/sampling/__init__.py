"""Chained, patch-by-patch sampling of cubes of any size (raster or wavefront order), streamed to HDF5.

The calls a notebook makes: `sample_chain` and `upscale` (files), `load_chain`
(runs and their levels), `sample_in_memory` (arrays) and `make_level` (one
level); see `api`, `chain` and `levels`.
"""

from nbgan_app.sampling.api import Chain, SampleResult, load_chain, sample_chain, upscale
from nbgan_app.sampling.chain import plan_chain, sample_in_memory
from nbgan_app.sampling.levels import make_level

__all__ = ["Chain", "SampleResult", "load_chain", "make_level", "plan_chain", "sample_chain", "sample_in_memory",
           "upscale"]
