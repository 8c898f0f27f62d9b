"""nbgan: a chain of 3-D WGAN-GP models that emulates N-body density cubes of any size."""

import os

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX.
# Elsewhere (an AMD EPYC with AVX2, say) the 3-D convolutions and their gradients fall back to Eigen:
# there the demo M1's train step took 56 s instead of 1.9 s (BENCHMARKS.md). TensorFlow reads the switch
# once, when it loads, so it is set here, before any nbgan module imports it; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
