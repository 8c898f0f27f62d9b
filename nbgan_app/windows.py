"""Windows: what an up-scaling model sees, identical in training and sampling.

A window is a (2p)^d block of a level cube (d = 2 or 3, p the patch side),
channels last. Its last octant (indices p..2p-1 on every axis) is the target
patch; the other 2^d - 1 octants are the neighbour patches, generated before
the target in any sampling order. Where the window reaches past the cube's
low faces, those neighbours are zeros: in training and in sampling alike.

The generator's context is built from the window alone, by `split_window`:
the 2^d - 1 neighbour patches, each flipped along the axes where it precedes
the target so that the face it shares with the target sits at index 0 like the
target's own, stacked as channels in `neighbour_offsets` order, then (for M2
and M1) the coarse target patch up-sampled by a constant kernel. The latent
channel is prepended by the caller: generator input = [latent, context].

The coarse window of an up-scaler covers the fine window: (2p/f)^d, corner at
the fine window's corner / f. With `lookahead` it reaches one patch further
past the target's high faces, (3p/f)^d, because the whole coarser level exists
before a level is made: the coarse patches at `ahead_offsets` (the target's
neighbours that are generated after it) then come before the coarse target in
the context, each up-sampled and flipped along the axes where it follows the
target, so that the face it shares with the target sits at index p - 1 like
the target's own. Past the level's faces they are zeros, in training and in
sampling alike. The thesis's conditioning is the coarse target alone: without
the coarse field beyond it, a patch cannot know how mass slopes toward its
high-side neighbours.

The critic sees the whole window with the real or generated target, and for
M2/M1 the coarse window up-sampled and the residual window - up(coarse), as
the released code does (`critic_input`); with the lookahead also the
generator's lookahead channels, in the target octant. Optionally also the
window's counts.

Functions on tensors use keras.ops and take a leading batch axis; the NumPy
helper `extract_window` cuts windows out of cubes with zero padding.
"""

from __future__ import annotations

import itertools

import numpy as np


def neighbour_offsets(ndim: int) -> list[tuple[int, ...]]:
    """Patch-grid offsets of the neighbours, in channel order: product((-1, 0)) minus the target."""
    return [o for o in itertools.product((-1, 0), repeat=ndim) if any(o)]


def ahead_offsets(ndim: int) -> list[tuple[int, ...]]:
    """Patch-grid offsets of the lookahead coarse patches, in channel order: product((0, 1)) minus the target."""
    return [o for o in itertools.product((0, 1), repeat=ndim) if any(o)]


def coarse_span(lookahead: bool) -> int:
    """Patches per axis that an up-scaler's coarse window covers: 2, or 3 with the lookahead."""
    return 3 if lookahead else 2


def extract_window(cube: np.ndarray, corner: tuple[int, ...], size: int) -> np.ndarray:
    """The size^d block of `cube` starting at `corner`; parts outside the cube are zero.

    `cube` has shape (S,)*d (optionally with trailing channels); `corner` may be
    negative (a window at the cube's low faces).
    """
    ndim = len(corner)
    out = np.zeros((size,) * ndim + cube.shape[ndim:], dtype=cube.dtype)
    src, dst = [], []
    for c, side in zip(corner, cube.shape[:ndim]):
        lo, hi = max(c, 0), min(c + size, side)
        src.append(slice(lo, hi))
        dst.append(slice(lo - c, hi - c))
    out[tuple(dst)] = cube[tuple(src)]
    return out


def _ops():
    from keras import ops

    return ops


def _octant(window, offset: tuple[int, ...], p: int):
    """The patch at patch-offset `offset` (0 = target) of a (B, 2p..., C) window."""
    index = (slice(None),) + tuple(slice(p * (1 + o), p * (2 + o)) for o in offset) + (slice(None),)
    return window[index]


def upsample(x, factor: int):
    """Constant-kernel up-sampling of (B, s..., C) by `factor` per spatial axis (nearest)."""
    ops = _ops()
    for axis in range(1, len(x.shape) - 1):
        x = ops.repeat(x, factor, axis=axis)
    return x


def split_window(window, coarse=None, lookahead: bool = False):
    """Generator context and real target of a batch of windows.

    Args:
        window: (B, 2p, ..., 2p, 1) level-cube windows (transformed space).
        coarse: (B, s p/f, ..., s p/f, 1) the same windows at the coarser level (s = `coarse_span`),
            or None for models without down-scaled input (M3 never uses windows; Mu).
        lookahead: the coarse windows reach one patch past the target's high faces (module docstring).

    Returns:
        context (B, p, ..., p, 2^d - 1 [+ 2^d - 1 with the lookahead] [+ 1]) and target (B, p, ..., p, 1).
    """
    ops = _ops()
    ndim = len(window.shape) - 2
    p = window.shape[1] // 2
    channels = []
    for offset in neighbour_offsets(ndim):
        channels.append(_facing(_octant(window, offset, p), offset, lambda o: o < 0))
    if coarse is not None:
        small = coarse.shape[1] // coarse_span(lookahead)
        if lookahead:
            channels += _ahead(coarse, p)
        channels.append(upsample(_octant(coarse, (0,) * ndim, small), p // small))
    return ops.concatenate(channels, axis=-1), target_patch(window)


def _ahead(coarse, p: int) -> list:
    """The lookahead channels (B, p..., 1) of a (3p/f)^d coarse window, in `ahead_offsets` order."""
    small = coarse.shape[1] // coarse_span(True)
    return [upsample(_facing(_octant(coarse, offset, small), offset, lambda o: o > 0), p // small)
            for offset in ahead_offsets(len(coarse.shape) - 2)]


def _facing(patch, offset: tuple[int, ...], flip) -> object:
    """`patch` flipped along the axes whose offset satisfies `flip`, so it mirrors the target across their faces."""
    ops = _ops()
    for axis, o in enumerate(offset):
        if flip(o):
            patch = ops.flip(patch, axis=1 + axis)
    return patch


def target_patch(window):
    """The target octant (B, p, ..., p, C) of a batch of (2p)^d windows (`split_window`'s target)."""
    return _octant(window, (0,) * (len(window.shape) - 2), window.shape[1] // 2)


def with_target(window, target):
    """The window with its target octant replaced by `target` (B, p..., 1)."""
    ops = _ops()
    mask = _in_target_octant(ops.ones_like(target))
    return window * (1 - mask) + _in_target_octant(target)


def _in_target_octant(patch):
    """A (B, 2p..., C) window holding `patch` (B, p..., C) in its target octant and zeros elsewhere."""
    p = patch.shape[1]
    return _ops().pad(patch, [[0, 0]] + [[p, 0]] * (len(patch.shape) - 2) + [[0, 0]])


def critic_input(window, coarse=None, counts=None, lookahead: bool = False):
    """What the critic sees: the window, plus up(coarse) and window - up(coarse) when given, plus
    `counts(window)` last when given (a count-space channel: see `gan.wgan_gp.WGANGP`).

    With the lookahead, the coarse window is cut back to the fine window's extent, and the
    generator's lookahead channels come after the residual, in the target octant (zeros elsewhere):
    the critic can judge a target only against what its generator was given.
    """
    ops = _ops()
    channels = [window]
    if coarse is not None:
        ahead = []
        if lookahead:
            p = window.shape[1] // 2
            ahead = [_in_target_octant(a) for a in _ahead(coarse, p)]
            side = 2 * coarse.shape[1] // coarse_span(True)
            coarse = coarse[(slice(None),) + (slice(0, side),) * (len(coarse.shape) - 2) + (slice(None),)]
        up = upsample(coarse, window.shape[1] // coarse.shape[1])
        channels += [up, window - up] + ahead
    if counts is not None:
        channels.append(counts(window))
    return channels[0] if len(channels) == 1 else ops.concatenate(channels, axis=-1)


def critic_channels(conditional: bool, counts: bool, lookahead: bool = False, ndim: int = 3) -> int:
    """Channels of `critic_input`: the window, [up(coarse), residual, [lookahead]], [counts]."""
    return 1 + (2 + int(lookahead) * (2**ndim - 1)) * int(conditional) + int(counts)


def context_channels(ndim: int, conditional: bool, lookahead: bool = False) -> int:
    """Channels of the generator context (without the latent channel)."""
    return (2**ndim - 1) * (1 + int(conditional and lookahead)) + int(conditional)
