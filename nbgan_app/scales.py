"""The four scales a run trains: M3, M2, M1 and the uni-scale baseline Mu.

A scale's `name` ("3", "2", "1", "uni") is what the CLI takes (`--scale`),
what a run directory records (config.json `run.scale`) and what sample files
list (`scales`); everything else about it (its pyramid level, config
section, whether it makes whole cubes or is conditioned on a coarser level,
its side and factor) is derived here, and only here.

Levels follow the thesis: level 1 is the full-resolution cube I1
(`pyramid.sizes[0]` voxels per side), level 3 the coarsest I3
(`pyramid.sizes[-1]`). Mu works at level 1 without a condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbgan_app.errors import InputError

if TYPE_CHECKING:
    from nbgan_app.config import PyramidConfig


@dataclass(frozen=True)
class Scale:
    """One scale; compare scales by identity or by `name`, never by a hand-written string.

    Attributes:
        name: the CLI and run-directory string, "3", "2", "1" or "uni".
        level: the pyramid level its model produces, 3 (coarsest) .. 1 (finest).
        section: its config section, "m3", "m2", "m1" or "mu".
        title: the model's name in the thesis and in messages, "M3", "M2", "M1", "Mu".
        role: a few words for menus ("whole coarse cube", ...).
        whole_cube: it makes whole cubes from a latent vector (M3); otherwise patch by patch.
        conditional: it is conditioned on the next coarser level (M2, M1).
    """

    name: str
    level: int
    section: str
    title: str
    role: str
    whole_cube: bool
    conditional: bool

    def side(self, pyramid: PyramidConfig) -> int:
        """Voxels per side of the level the scale's model produces."""
        return pyramid.sizes[self.level - 1]

    def factor(self, pyramid: PyramidConfig) -> int | None:
        """Its side over the side of the level it is conditioned on; None without a condition (M3, Mu)."""
        if not self.conditional:
            return None
        return pyramid.sizes[self.level - 1] // pyramid.sizes[self.level]

    def __str__(self) -> str:
        return self.name


M3 = Scale("3", 3, "m3", "M3", "whole coarse cube", whole_cube=True, conditional=False)
M2 = Scale("2", 2, "m2", "M2", "up-scale", whole_cube=False, conditional=True)
M1 = Scale("1", 1, "m1", "M1", "full resolution", whole_cube=False, conditional=True)
MU = Scale("uni", 1, "mu", "Mu", "baseline", whole_cube=False, conditional=False)

ALL = (M3, M2, M1, MU)
NAMES = tuple(s.name for s in ALL)
CHAIN = (M3, M2, M1)  # the multi-scale chain, coarsest first
UPSCALERS = tuple(s for s in ALL if s.conditional)

_BY_NAME = {s.name: s for s in ALL}
_BY_SECTION = {s.section: s for s in ALL}


def scale(name: str | Scale) -> Scale:
    """The scale called `name` ("3", "2", "1" or "uni"; a Scale is returned as is).

    Raises InputError for any other name.
    """
    if isinstance(name, Scale):
        return name
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is None:
        raise InputError(f"Expected scale in {', '.join(NAMES)}. Received: scale={name!r}")
    return found


def title_of(name: str) -> str:
    """The model title of a scale name ("uni" -> "Mu"); a name that is no scale's comes back as given."""
    found = _BY_NAME.get(name)
    return found.title if found is not None else name


def of_section(section: str) -> Scale:
    """The scale whose config section is `section` ("m3", "m2", "m1", "mu"); KeyError otherwise."""
    return _BY_SECTION[section]
