"""Point-wise count transforms, kept as named forward/backward pairs.

The networks work in transformed space: counts x >= 0 are mapped by a forward
transform f that is logarithmic for small counts and linear above a cut c, so
that both voids and halos keep their resolution (thesis section 4.1). All maps
send 0 to 0, are continuous and strictly increasing, hence bijective on their
ranges. The backward maps clip at 0: a generator may emit slightly negative
values, and counts cannot be negative.

- "thesis" (eqs. 4.1-4.4):
      f0(x) = ln((x+1)/(c+1))        x <= c
            = (x+1)/(c+1) - 1        x >  c
      f(x)  = (f0(x) - f0(0)) / scale,  f0(0) = -ln(c+1)
  The two pieces meet at x = c with equal slope 1/(c+1).
- "released" (3DcosmoGAN): f(x) = 3 ln(x+1)/ln(c+1) up to c, continued
  linearly with the same slope above c.

Arithmetic is float64 inside; results come back as float32.
"""

from __future__ import annotations

import math

import numpy as np

from nbgan_app.config import TransformConfig


def _thesis_forward(x, c, scale, xp=np):
    f0 = xp.where(x <= c, xp.log1p(xp.minimum(x, c)) - math.log1p(c), (x + 1) / (c + 1) - 1)
    return (f0 + math.log1p(c)) / scale


def _thesis_backward(y, c, scale, xp=np):
    z = y * scale - math.log1p(c)
    return xp.where(z <= 0, xp.exp(xp.minimum(z, 0)) * (c + 1) - 1, (z + 1) * (c + 1) - 1)


def _released_forward(x, c, _scale, xp=np):
    log_c = math.log1p(c)
    return xp.where(x <= c, 3 * xp.log1p(xp.minimum(x, c)) / log_c, 3 + 3 * (x - c) / ((c + 1) * log_c))


def _released_backward(y, c, _scale, xp=np):
    log_c = math.log1p(c)
    return xp.where(y <= 3, xp.expm1(xp.minimum(y, 3) * log_c / 3), c + (y - 3) * (c + 1) * log_c / 3)


_PAIRS = {
    "thesis": (_thesis_forward, _thesis_backward),
    "released": (_released_forward, _released_backward),
}


def forward(counts, transform: TransformConfig) -> np.ndarray:
    """Counts (>= 0) to transformed space."""
    fn = _PAIRS[transform.kind][0]
    return fn(np.asarray(counts, dtype=np.float64), transform.c, transform.scale).astype(np.float32)


def backward(values, transform: TransformConfig) -> np.ndarray:
    """Transformed values back to counts, clipped at 0."""
    fn = _PAIRS[transform.kind][1]
    out = fn(np.asarray(values, dtype=np.float64), transform.c, transform.scale)
    return np.maximum(out, 0).astype(np.float32)


def forward_ops(counts, kind: str, c: float, scale: float):
    """`forward` on tensors (keras.ops, any backend, differentiable), in the tensors' dtype."""
    from keras import ops

    return _PAIRS[kind][0](counts, c, scale, xp=ops)


def backward_ops(values, kind: str, c: float, scale: float):
    """`backward` on tensors (keras.ops, any backend, differentiable), in the tensors' dtype.

    These take the transform's fields rather than its config so that a Keras model can keep
    them in its own config (`gan.wgan_gp.WGANGP`'s count channel, `models.residual.CountSplit`).
    """
    from keras import ops

    return ops.maximum(_PAIRS[kind][1](values, c, scale, xp=ops), 0)
