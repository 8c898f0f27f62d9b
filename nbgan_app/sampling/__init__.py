"""Chained, patch-by-patch sampling of cubes of any size (raster or wavefront order), streamed to HDF5."""
