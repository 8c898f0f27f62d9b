"""Particle-mesh N-body simulations (jaxpm) binned into count cubes.

One box: a LambdaCDM linear power spectrum (jax_cosmo, Eisenstein-Hu), Gaussian
initial conditions drawn from `jax.random` with seed `sim.seed + index`,
first-order LPT displacements at `a_start`, then `sim.steps` kick-drift-kick
steps, linear in the scale factor, to a = 1 (z = 0). Gravity is jaxpm's
`pm_forces` (CIC painting, FFT Poisson solve) on a `sim.mesh`^3 mesh; the time
integrator is the FastPM one (Feng et al. 2016): kick and drift factors are
ratios of growth functions, so the linear growth of large scales is exact
whatever the number of steps (jaxpm 0.1.6 ships only ODE right-hand sides,
no fixed-step integrator). The final positions are binned nearest-grid-point
into `sim.grid`^3 periodic counts (`nbgan_app.binning`), what the thesis trains on.

Units: box side in Mpc/h; jaxpm works in mesh-cell units, converted at the end.
jax and jax_cosmo are imported lazily so that a suite already on disk is
checked and returned without loading them (a rerun is instant).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import warnings
from pathlib import Path

import numpy as np

from nbgan_app.binning import bin_positions
from nbgan_app.config import SimulationConfig
from nbgan_app.cubes import check_box_size, check_memory, write_cube
from nbgan_app.errors import InputError
from nbgan_app.outputs import check_output_dir, ensure_writable_dir

# The settings a cube depends on: stored as attributes of each box file and
# compared on reuse, so a cache made with other settings is never taken silently.
PHYSICS_KEYS = ("particles", "mesh", "grid", "box_size", "steps", "a_start", "seed",
                "omega_m", "sigma8", "h", "n_s", "omega_b")
MAKER = "nbgan simulate (jaxpm particle-mesh, FastPM kick-drift-kick)"


def check_simulation(sim: SimulationConfig) -> SimulationConfig:
    """Raise InputError naming the first setting jaxpm cannot run with."""
    for key in ("boxes", "particles", "mesh", "grid", "steps"):
        if getattr(sim, key) <= 0:
            raise InputError(f"simulation.{key}: expected > 0. Received: {getattr(sim, key)}")
    if sim.mesh != sim.particles:
        # jaxpm 0.1.6's cic_paint/cic_read reshape the particles to the mesh shape.
        raise InputError(f"simulation.mesh: jaxpm 0.1.6 needs one particle per mesh cell; "
                         f"expected mesh == particles. Received: mesh={sim.mesh}, particles={sim.particles}")
    check_box_size(sim.box_size, "simulation.box_size")
    if not 0 < sim.a_start < 1:
        raise InputError(f"simulation.a_start: expected 0 < a_start < 1. Received: {sim.a_start}")
    if not 0 < sim.omega_b < sim.omega_m:
        raise InputError(f"simulation.omega_b: expected 0 < omega_b < omega_m. Received: {sim.omega_b}")
    return sim


def _box_bytes(sim: SimulationConfig) -> int:
    """A lower bound on one box's memory: per particle its position, momentum and force (float32,
    3 each) and the float64 positions binned; per mesh cell the density and its Fourier transform;
    per grid cell the binning's counts."""
    return sim.particles**3 * (36 + 24) + sim.mesh**3 * 16 + sim.grid**3 * 16


def check_simulation_memory(sim: SimulationConfig) -> None:
    """Raise InputError, before jax allocates anything, when one box cannot fit in the memory available."""
    check_memory(_box_bytes(sim),
                 f"simulation of {sim.particles}^3 particles on a {sim.mesh}^3 mesh into a {sim.grid}^3 grid")


def suite_threads(sim: SimulationConfig, boxes: int) -> int:
    """How many boxes to simulate at once: on jax's CPU backend one per usable core, as many as fit
    in memory, at most `boxes`; on a GPU one (it runs a box's kernels in parallel itself, and its
    memory, not the host's, bounds a box).

    On a 2-core AVX2 EPYC two threads made 6 demo boxes in 10.1 s against 15.2 s one after
    the other (jaxpm's CIC painting runs on one core); each box's numbers do not depend on it.
    """
    import jax

    from nbgan_app.cubes import available_memory
    from nbgan_app.devices import usable_cores

    if jax.default_backend() != "cpu":
        return 1
    cores = usable_cores()
    available = available_memory()
    fit = cores if available is None else available // _box_bytes(sim)
    return max(1, min(cores, fit, boxes))


def _import_jax_cosmo():
    with warnings.catch_warnings():
        # jax_cosmo 0.1.0 imports the deprecated pkg_resources at import time.
        warnings.simplefilter("ignore")
        import jax_cosmo
    return jax_cosmo


def _cosmology(sim: SimulationConfig):
    """A fresh jax_cosmo Cosmology: flat LambdaCDM, w = -1."""
    jc = _import_jax_cosmo()
    return jc.Cosmology(Omega_c=sim.omega_m - sim.omega_b, Omega_b=sim.omega_b, h=sim.h,
                        n_s=sim.n_s, sigma8=sim.sigma8, Omega_k=0.0, w0=-1.0, wa=0.0)


def _power_table(sim: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Linear matter power at z = 0: k in h/Mpc (log-spaced), P in (Mpc/h)^3.

    Uses its own Cosmology object: jax_cosmo.power fills the growth cache with a
    table lacking the second-order keys jaxpm's growth functions read (a known
    jaxpm 0.1.6 / jax-cosmo 0.1.0 pitfall).
    """
    jc = _import_jax_cosmo()
    import jax

    k = np.logspace(-4, 2, 512)
    # One jit-compiled trace: jax_cosmo's growth ODE run op by op takes several times longer.
    return k, np.asarray(jax.jit(lambda: jc.power.linear_matter_power(_cosmology(sim), k))())


@contextlib.contextmanager
def _int64_request_ignored():
    """jax_cosmo asks for int64 indices, which jax (32-bit by default) truncates to int32: harmless.
    Only around a trace, in one thread: `warnings.catch_warnings` is not thread-safe."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
        yield


@functools.lru_cache(maxsize=4)
@_int64_request_ignored()
def _schedule(sim: SimulationConfig) -> np.ndarray:
    """FastPM factors per step, shape (steps, 3): first half kick, drift, second half kick.

    With p the momentum of jaxpm's ODE (dx/da = p / (a^3 E), dp/da = 1.5 Omega_m F / (a^2 E)),
    a drift over [a0, a1] with p taken at ac moves x by p (D(a1) - D(a0)) / Gf(ac), and a
    kick with the force at ac changes p by dp/da(ac) (Gf(a1) - Gf(a0)) / Gf'(ac); both are
    exact for linear growth (Gf = a^3 E dD/da, jaxpm.growth).
    """
    jc = _import_jax_cosmo()
    import jax
    import jax.numpy as jnp
    from jaxpm import growth

    a = np.linspace(sim.a_start, 1.0, sim.steps + 1)
    mid = 0.5 * (a[:-1] + a[1:])

    @jax.jit
    def factors(a, mid):
        cosmo = _cosmology(sim)  # one fresh object: jaxpm fills its growth cache once per trace

        def kick(at):  # dp/da per unit force at `at`, over dGf/da at `at`
            dp_da = 1.5 * cosmo.Omega_m / (at**2 * jnp.sqrt(jc.background.Esqr(cosmo, at)))
            return dp_da / growth.dGfa(cosmo, at)

        def gf(x):
            return growth.Gf(cosmo, x)

        first = kick(a[:-1]) * (gf(mid) - gf(a[:-1]))
        drift = (growth.growth_factor(cosmo, a[1:]) - growth.growth_factor(cosmo, a[:-1])) / gf(mid)
        second = kick(a[1:]) * (gf(a[1:]) - gf(mid))
        return jnp.stack([first, drift, second], axis=1)

    return np.asarray(factors(a, mid), dtype=np.float32)


@functools.lru_cache(maxsize=4)
@_int64_request_ignored()
def _compiled(physics: SimulationConfig):
    """Compiled (initial conditions, one KDK step) for one set of settings; reused across boxes.

    Compiled ahead of time, so that running a box traces nothing: the warnings of a trace are
    silenced here, once, and boxes may then run on several threads (`warnings.catch_warnings`
    is not thread-safe).
    """
    _import_jax_cosmo()
    import jax
    import jax.numpy as jnp
    from jaxpm.pm import linear_field, lpt, pm_forces

    shape, box = (physics.mesh,) * 3, (float(physics.box_size),) * 3
    k_table, p_table = (jnp.asarray(t) for t in _power_table(physics))
    nodes = jnp.meshgrid(*[jnp.arange(physics.mesh, dtype=jnp.float32)] * 3, indexing="ij")
    lattice = jnp.stack(nodes, axis=-1).reshape(-1, 3)  # particles start on the mesh nodes (mesh-cell units)

    def power(k):
        return jnp.interp(k.reshape(-1), k_table, p_table).reshape(k.shape)

    def initial(key):
        field = linear_field(shape, box, power, seed=key)
        # A fresh cosmology inside the trace, apart from the power spectrum's (pitfall above).
        dx, p, _ = lpt(_cosmology(physics), field, particles=lattice, a=physics.a_start)
        return lattice + dx, p

    def step(x, p, factors):
        p = p + factors[0] * pm_forces(x, mesh_shape=shape)
        x = x + factors[1] * p
        p = p + factors[2] * pm_forces(x, mesh_shape=shape)
        return x, p

    key = jax.random.PRNGKey(0)
    x, p = jax.eval_shape(initial, key)
    factors = jax.ShapeDtypeStruct((3,), jnp.float32)
    return jax.jit(initial).lower(key).compile(), jax.jit(step).lower(x, p, factors).compile()


def _physics(sim: SimulationConfig) -> SimulationConfig:
    """`sim` with the fields that do not change the compiled functions blanked (cache key)."""
    return dataclasses.replace(sim, cache="", boxes=1, seed=0, steps=1, grid=1)


def _schedule_key(sim: SimulationConfig) -> SimulationConfig:
    """`sim` with the fields the time steps do not depend on blanked (cache key)."""
    return dataclasses.replace(sim, cache="", boxes=1, seed=0, grid=1, particles=1, mesh=1, box_size=1.0)


def simulate_box(sim: SimulationConfig, index: int) -> np.ndarray:
    """Run box `index` of the suite; return counts, float32 of shape (grid,)*3, summing to particles^3."""
    import jax

    check_simulation(sim)
    initial, step = _compiled(_physics(sim))
    x, p = initial(jax.random.PRNGKey(sim.seed + index))
    for factors in _schedule(_schedule_key(sim)):
        x, p = step(x, p, factors)
    # Mesh units to Mpc/h, folded into the periodic box [0, L).
    positions = np.mod(np.asarray(x, dtype=np.float64) * (sim.box_size / sim.mesh), sim.box_size)
    return bin_positions(positions, sim.grid, sim.box_size, source=f"simulated box {index}")


def box_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"box_{index:03d}.h5"


def box_attrs(sim: SimulationConfig, index: int) -> dict:
    """The attributes a box file carries: the settings it was made with, its index and seed."""
    attrs = {key: getattr(sim, key) for key in PHYSICS_KEYS if key != "box_size"}
    return {**attrs, "index": index, "box_seed": sim.seed + index, "maker": MAKER}


def check_cached_box(path: Path, sim: SimulationConfig, index: int) -> None:
    """Raise InputError unless the existing `path` was made with exactly these settings."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            found = dict(f.attrs)
    except OSError:
        raise InputError(f"{path} exists and is not a readable HDF5 file; delete it or use another --out") from None
    wanted = {**box_attrs(sim, index), "box_size": float(sim.box_size)}
    for key, value in wanted.items():
        if key not in found:
            raise InputError(f"{path} was not made by nbgan simulate (no attribute {key}); "
                             "use another --out directory")
        if found[key] != value:
            raise InputError(f"{path} was made with {key}={found[key]}, not {value}; "
                             "use another --out directory or delete the old boxes")


def simulate_suite(sim: SimulationConfig, out_dir: Path, progress: bool = True,
                   parents: bool = True) -> list[Path]:
    """Write box_000.h5 ... one count cube per box into `out_dir`; return all their paths.

    Boxes already there (made with the same settings) are kept, so a rerun is
    instant and an interrupted run resumes; each file is written atomically, so
    an interruption never leaves a box that looks complete. Progress goes to stderr.
    The first box to make runs alone (it compiles); the others run `suite_threads` at a time,
    written in order.
    `parents`: create missing parents of `out_dir` (a config's cache directory, a layout
    nbgan owns); `nbgan simulate --out DIR` passes False, so a typo makes no directories.
    """
    check_simulation(sim)
    check_simulation_memory(sim)
    check_output_dir(out_dir, parents=parents)
    out_dir = ensure_writable_dir(out_dir, parents=parents)
    paths = [box_path(out_dir, i) for i in range(sim.boxes)]
    todo = []
    for index, path in enumerate(paths):
        if path.exists():
            check_cached_box(path, sim, index)
        else:
            todo.append(index)
    if not todo:
        return paths
    with _progress_bar(progress, sim, out_dir) as advance:
        advance(sim.boxes - len(todo))
        for index, counts in _simulated(sim, todo):
            write_cube(paths[index], counts, box_size=sim.box_size, **box_attrs(sim, index))
            advance(1)
    return paths


def _simulated(sim: SimulationConfig, todo: list[int]):
    """(index, counts) of the boxes `todo`, in order: the first alone, then `suite_threads` at a time,
    no more boxes in memory than are running."""
    from concurrent.futures import ThreadPoolExecutor

    yield todo[0], simulate_box(sim, todo[0])
    rest = todo[1:]
    if not rest:
        return
    threads = suite_threads(sim, len(rest))
    with ThreadPoolExecutor(threads) as pool:
        running = collections.deque()
        for index in rest:
            running.append((index, pool.submit(simulate_box, sim, index)))
            if len(running) == threads:
                index, done = running.popleft()
                yield index, done.result()
        while running:
            index, done = running.popleft()
            yield index, done.result()


def _progress_bar(enabled: bool, sim: SimulationConfig, out_dir: Path):
    """A context giving `advance(n)`: a rich progress bar of boxes on stderr, or nothing."""

    if not enabled:
        return contextlib.nullcontext(lambda n: None)

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("boxes"), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar_:
            task = bar_.add_task(f"simulating {sim.particles}^3 particles -> {out_dir}", total=sim.boxes)
            yield lambda n: bar_.advance(task, n)

    return bar()
