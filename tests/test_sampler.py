"""The patch sampler with fake generators: coverage, contexts, orders, call counts, memory, resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import pytest

from nbgan_app.errors import InputError
from nbgan_app.sampling import noise
from nbgan_app.sampling.chain import LevelPlan, RunInfo, dataset_specs, plan_chain, run_chain
from nbgan_app.sampling.orders import waves
from nbgan_app.sampling.writer import LevelTarget, SampleFile

FAKE_RUN = RunInfo(Path("fake"), "1", None)
SEED = 5


class WholeFake:
    """Fake M3: a cube filled with 1 + |first latent component| + cube-varying ramp."""

    def __init__(self, side, ndim, fail=False):
        self.side, self.ndim, self.calls, self.fail = side, ndim, 0, fail

    def __call__(self, latent):
        if self.fail:
            raise RuntimeError("interrupted")
        self.calls += 1
        ramp = np.arange(self.side ** self.ndim, dtype=np.float32).reshape((self.side,) * self.ndim) / 100
        return np.stack([1 + abs(z[0]) + ramp for z in latent])[..., None]


class PatchFake:
    """Fake up-scaler that identifies each row by its latent and checks its context.

    It keeps its own copy of the level made so far and of the coarse level, and
    asserts that every neighbour channel equals the written neighbour (flipped
    where it precedes the target), zeros past the low faces, and that the last
    channel is the coarse target patch up-sampled.
    """

    def __init__(self, n_cubes, n, patch, ndim, level, coarse=None, factor=None, fail_after=None, shift=1.0):
        self.n, self.p, self.ndim, self.coarse, self.factor, self.shift = n, patch, ndim, coarse, factor, shift
        self.cube = np.zeros((n_cubes,) + (n * patch,) * ndim, np.float32)
        self.written = np.zeros((n_cubes,) + (n,) * ndim, bool)
        self.ids = {noise.patch_latent(SEED, level, c, i, patch).tobytes(): (c, i)
                    for c in range(n_cubes) for i in itertools.product(range(n), repeat=ndim)}
        self.calls, self.fail_after, self.face_contexts = 0, fail_after, []
        self.watch = None  # called before every call

    def region(self, index):
        return tuple(slice(i * self.p, (i + 1) * self.p) for i in index)

    def expected_context(self, cube, index):
        channels = []
        for offset in [o for o in itertools.product((-1, 0), repeat=self.ndim) if any(o)]:
            j = tuple(i + o for i, o in zip(index, offset))
            if min(j) < 0:
                channels.append(np.zeros((self.p,) * self.ndim, np.float32))
                continue
            assert self.written[(cube,) + j], f"neighbour {j} of {index} not generated yet"
            patch = self.cube[(cube,) + self.region(j)]
            channels.append(np.flip(patch, [a for a, o in enumerate(offset) if o < 0]))
        if self.coarse is not None:
            small = self.p // self.factor
            target = self.coarse[(cube,) + tuple(slice(i * small, (i + 1) * small) for i in index)]
            for axis in range(self.ndim):
                target = np.repeat(target, self.factor, axis=axis)
            channels.append(target)
        return np.stack(channels, -1)

    def __call__(self, x):
        if self.watch is not None:
            self.watch()
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls += 1
        out = []
        for row in x:
            cube, index = self.ids[np.ascontiguousarray(row[..., :1]).tobytes()]
            np.testing.assert_array_equal(row[..., 1:], self.expected_context(cube, index))
            if not any(index):
                self.face_contexts.append(row[..., 1:1 + 2 ** self.ndim - 1].copy())
            value = self.shift + 0.5 * np.abs(row[..., 0]) + 0.1 * row[..., 1:].mean(-1)
            assert not self.written[(cube,) + index], "patch generated twice"
            self.cube[(cube,) + self.region(index)] = value
            self.written[(cube,) + index] = True
            out.append(value)
        return np.stack(out)[..., None]


# --- the patch sampler with fakes that check every window: orders, files, resume -------------

def two_level_plans(n, patch, factor, ndim):
    coarse_side = n * patch // factor
    return [LevelPlan(2, coarse_side, coarse_side, None, 3, FAKE_RUN, "levels/2"),
            LevelPlan(1, n * patch, patch, factor, None, FAKE_RUN, "data")], coarse_side


def sample(path, n_cubes=2, n=3, patch=4, factor=2, ndim=3, order="wavefront", max_batch=1000,
           fail_after=None, resume=False, to_counts=None, whole_fails=False, shift=1.0, memory=None,
           overwrite=False, watch=None):
    """Sample into `path`; on `resume` the fake checks contexts against `memory` (the uninterrupted run's level).

    `watch()` is called before every call of the fine level's generator (what a kill then would leave).
    """
    plans, coarse_side = two_level_plans(n, patch, factor, ndim)
    whole = WholeFake(coarse_side, ndim)
    coarse = np.stack([whole(noise.cube_latent(SEED, 2, c, 3)[None])[0, ..., 0] for c in range(n_cubes)])
    fine = PatchFake(n_cubes, n, patch, ndim, 1, coarse, factor, fail_after, shift)
    fine.watch = watch
    waves_seen = []
    with SampleFile(path, dataset_specs(plans, ndim), n_cubes, {"seed": SEED, "order": order},
                    resume=resume, overwrite=overwrite) as f:
        if resume:  # what the first run made, as the uninterrupted run made it
            done = np.repeat(f.h5["progress/data"][()].astype(bool)[None], n_cubes, 0)
            fine.written[:] = done
            for axis in range(1, ndim + 1):
                done = np.repeat(done, patch, axis)
            fine.cube[:] = np.where(done, memory, 0)
        run_chain(plans, [WholeFake(coarse_side, ndim, whole_fails), fine], f, n_cubes, seed=SEED, order=order,
                  max_batch=max_batch, to_counts=to_counts,
                  progress=lambda w, total, level: waves_seen.append((w, total, level)))
    return fine, waves_seen


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], bool(f.attrs["complete"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_voxel_written_once_and_contexts_match(tmp_path, monkeypatch, ndim):
    writes = {}
    original = LevelTarget.write

    def counting_write(self, cube, index, values):
        key = (self.spec.name, cube, index)
        writes[key] = writes.get(key, 0) + 1
        original(self, cube, index, values)

    monkeypatch.setattr(LevelTarget, "write", counting_write)
    fine, _ = sample(tmp_path / "out.h5", ndim=ndim)
    data, complete = read(tmp_path / "out.h5")
    assert complete
    fine_writes = {k: v for k, v in writes.items() if k[0] == "data"}
    assert len(fine_writes) == 2 * 3 ** ndim and set(fine_writes.values()) == {1}
    assert np.all(data > 0)  # the fake never emits 0, the fill value: every voxel was written
    np.testing.assert_allclose(data, fine.cube, rtol=1e-6)
    # zeros at the low faces: the corner patch sees no neighbour at all
    assert len(fine.face_contexts) == 2 and all(not c.any() for c in fine.face_contexts)


@pytest.mark.parametrize("ndim", [2, 3])
def test_wavefront_equals_raster_and_counts_calls(tmp_path, ndim):
    n = 4
    wave_fake, wave_progress = sample(tmp_path / "w.h5", n=n, ndim=ndim, order="wavefront")
    raster_fake, _ = sample(tmp_path / "r.h5", n=n, ndim=ndim, order="raster")
    np.testing.assert_allclose(read(tmp_path / "w.h5")[0], read(tmp_path / "r.h5")[0], rtol=1e-6, atol=1e-6)
    assert wave_fake.calls == ndim * (n - 1) + 1  # 3n-2 in 3-D, 2n-1 in 2-D
    assert raster_fake.calls == n ** ndim
    level1 = [w for w in wave_progress if w[2] == 1]
    assert [w[0] for w in level1] == list(range(1, ndim * (n - 1) + 2))


def test_max_batch_splits_waves(tmp_path):
    fake, _ = sample(tmp_path / "out.h5", n_cubes=3, n=3, max_batch=4)
    expected = sum(-(-len(w) * 3 // 4) for w in waves(3, 3, "wavefront"))
    assert fake.calls == expected


def test_store_holds_diagonal_slabs_only(tmp_path, monkeypatch):
    from nbgan_app.sampling.sampler import PatchSampler

    n, ndim = 6, 3
    seen = {}
    original = PatchSampler.sample

    def spy(self, target, n_cubes, coarse=None):
        original(self, target, n_cubes, coarse)
        seen["peak"], seen["left"], seen["misses"] = self.store.peak, len(self.store), self.store.fallback_reads

    monkeypatch.setattr(PatchSampler, "sample", spy)
    sample(tmp_path / "out.h5", n_cubes=1, n=n, patch=2, ndim=ndim)
    sizes = [len(w) for w in waves(n, ndim, "wavefront")]
    bound = max(sum(sizes[max(0, k - ndim):k + 1]) for k in range(len(sizes)))
    assert seen["peak"] <= bound < n ** ndim
    assert seen["left"] == 0 and seen["misses"] == 0


@pytest.mark.parametrize("order,transform", [("wavefront", None), ("raster", None), ("wavefront", "thesis"),
                                             ("raster", "released")])
def test_resume_after_interruption_gives_the_same_file(tmp_path, order, transform):
    """Bit for bit, also when `data` holds counts, whole particles drawn at random: neighbours come back
    from the frontier, not from counts, and the rounding is keyed by cube and patch like the latents."""
    from nbgan_app.config import Config, DataConfig, TransformConfig
    from nbgan_app.sampling.particles import patch_counts

    config = Config(data=DataConfig(), transform=TransformConfig(kind=transform or "thesis", c=20.0))
    to_counts = None if transform is None else (lambda y, cube, index: patch_counts(y, config, 1, SEED, cube, index))
    shift = 1.0 if transform is None else -0.6  # some negative outputs, which the backward transform clips
    kwargs = dict(order=order, to_counts=to_counts, shift=shift)
    whole, _ = sample(tmp_path / "whole.h5", **kwargs)
    if transform is not None:
        assert (whole.cube < 0).any()
        counts = read(tmp_path / "whole.h5")[0]
        assert np.array_equal(counts, np.round(counts)) and len(np.unique(counts)) > 2
    with pytest.raises(RuntimeError, match="interrupted"):
        sample(tmp_path / "cut.h5", fail_after=3, **kwargs)
    data, complete = read(tmp_path / "cut.h5")
    assert not complete and (data == 0).any()
    with pytest.raises(InputError, match="already exists"):
        sample(tmp_path / "cut.h5", **kwargs)
    with pytest.raises(InputError, match="order"):  # the order keys the frontier
        with SampleFile(tmp_path / "cut.h5", dataset_specs(two_level_plans(3, 4, 2, 3)[0]), 2,
                        {"seed": SEED, "order": "raster" if order == "wavefront" else "wavefront"}, resume=True):
            pass
    resumed, _ = sample(tmp_path / "cut.h5", resume=True, memory=whole.cube, **kwargs)  # asserts contexts
    assert resumed.calls < (5 if order == "wavefront" else 27)  # only what was missing
    data2, complete2 = read(tmp_path / "cut.h5")
    assert complete2
    np.testing.assert_array_equal(data2, read(tmp_path / "whole.h5")[0])
    np.testing.assert_array_equal(resumed.cube, whole.cube)


@pytest.mark.parametrize("order", ["wavefront", "raster"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_frontier_ring_never_overwrites_a_patch_still_needed(order, ndim):
    from nbgan_app.sampling.orders import frontier_key
    from nbgan_app.windows import neighbour_offsets

    n = 5
    holder = {}  # (slot, position) -> index last written there
    for wave in waves(n, ndim, order):
        for index in wave:
            for offset in neighbour_offsets(ndim):
                j = tuple(i + o for i, o in zip(index, offset))
                if min(j) >= 0:
                    assert holder[frontier_key(j, order)] == j
        for index in wave:
            holder[frontier_key(index, order)] = index


def test_failure_before_first_wave_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        sample(tmp_path / "out.h5", whole_fails=True)
    assert list(tmp_path.iterdir()) == []
    sample(tmp_path / "old.h5")
    before = read(tmp_path / "old.h5")[0]
    with pytest.raises(RuntimeError):  # --overwrite keeps the old file until the new one has content
        plans, _ = two_level_plans(3, 4, 2, 3)
        with SampleFile(tmp_path / "old.h5", dataset_specs(plans), 2, {}, overwrite=True) as f:
            run_chain(plans, [WholeFake(6, 3, fail=True), None], f, 2)
    np.testing.assert_array_equal(read(tmp_path / "old.h5")[0], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]


def test_overwrite_replaces_only_with_a_complete_file(tmp_path):
    """Until its last patch the new file is a temporary sibling: a kill at any moment leaves the old result."""
    out = tmp_path / "old.h5"
    sample(out)
    before = out.read_bytes()
    seen = []

    def old_file_still_there():
        assert out.read_bytes() == before
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    sample(out, overwrite=True, shift=2.0, watch=old_file_still_there)
    assert len(seen) == 7 and all(len(names) == 2 and names[0].startswith(".old.h5.tmp") for names in seen)
    after, complete = read(out)
    assert complete and out.read_bytes() != before and after.min() >= 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]
    # a run that fails late (after 5 of 7 waves) leaves the old file as it was, and no temporary file
    replaced = out.read_bytes()
    with pytest.raises(RuntimeError):
        sample(out, overwrite=True, shift=3.0, fail_after=5)
    assert out.read_bytes() == replaced and sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]
    # with no file to replace, --overwrite places the new file after its first wave, as a new run does
    with pytest.raises(RuntimeError):
        sample(tmp_path / "fresh.h5", overwrite=True, fail_after=3)
    assert not read(tmp_path / "fresh.h5")[1]


def test_a_given_level_alone_puts_no_file_in_place(tmp_path):
    """`nbgan upscale` writes its input level first; a failure before the first generated wave leaves nothing."""
    plans, coarse_side = two_level_plans(3, 4, 2, 3)
    plans[0] = LevelPlan(2, coarse_side, coarse_side, None, None, None, "levels/2")
    given = np.ones((2,) + (coarse_side,) * 3, np.float32)
    fine = PatchFake(2, 3, 4, 3, 1, given, 2, fail_after=0)
    with pytest.raises(RuntimeError):
        with SampleFile(tmp_path / "up.h5", dataset_specs(plans), 2, {}) as f:
            run_chain(plans, [None, fine], f, 2, given=given, seed=SEED)
    assert list(tmp_path.iterdir()) == []


def test_output_checks_before_writing(tmp_path, monkeypatch):
    from nbgan_app.sampling import writer

    plans, _ = two_level_plans(3, 4, 2, 3)
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(InputError, match=r"dir.h5 is a directory; expected the name of a file"):
        with SampleFile(tmp_path / "dir.h5", dataset_specs(plans), 2, {}, overwrite=True):
            pass
    with pytest.raises(InputError, match=r"typo/out.h5: directory \S+typo does not exist"):
        with SampleFile(tmp_path / "typo" / "out.h5", dataset_specs(plans), 2, {}):
            pass
    needed = SampleFile(tmp_path / "big.h5", dataset_specs(plans), 10**23, {}).nbytes()
    assert needed == 4 * 10**23 * (12 ** 3 + 6 ** 3 + 4 * 3 * 3 * 4 ** 3)
    with pytest.raises(InputError, match=r"big.h5: 100000000000000000000000 cubes of 12\^3 need about 1.7e\+15 TB"):
        with SampleFile(tmp_path / "big.h5", dataset_specs(plans), 10**23, {}):
            pass
    free = 10**6
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda path: type("Usage", (), {"free": free})())
    with pytest.raises(InputError, match=r"need about 3.4 MB, more than the 1 MB free"):
        with SampleFile(tmp_path / "big.h5", dataset_specs(plans), 200, {}):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.h5"]


def test_counts_are_written_after_the_backward_transform(tmp_path):
    from nbgan_app.config import TransformConfig
    from nbgan_app.transforms import backward

    config = TransformConfig()
    fine, _ = sample(tmp_path / "out.h5", to_counts=lambda y, cube, index: backward(y, config))
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_allclose(f["data"][()], backward(fine.cube, config), rtol=1e-6)
        assert f["levels/2"][()].max() < 100  # coarse levels stay in transformed space
        ring = f["progress/frontier_data"]  # the transformed patches a resume would need, bounded
        assert ring.shape == (4, 2, 3, 3, 4, 4, 4)
        np.testing.assert_array_equal(ring[0, :, 0, 0], fine.cube[:, :4, :4, :4])  # patch (0,0,0): slot 0


def test_resume_checks_the_run_matches(tmp_path):
    sample(tmp_path / "cut.h5", fail_after=None)
    plans, _ = two_level_plans(3, 4, 2, 3)
    with pytest.raises(InputError, match="seed"):
        with SampleFile(tmp_path / "cut.h5", dataset_specs(plans), 2, {"seed": 99}, resume=True):
            pass
    with pytest.raises(InputError, match="does not exist"):
        with SampleFile(tmp_path / "none.h5", dataset_specs(plans), 2, {"seed": 99}, resume=True):
            pass


# --- planning chains of real run configs -------------------------------------------------


def runs_of(config, scales, tmp_path):
    return [RunInfo(tmp_path / f"run{s}", s, config) for s in scales]


def test_plan_chain_sizes_and_bad_inputs(tiny_config, tmp_path):
    import dataclasses

    plans = plan_chain(runs_of(tiny_config, ["3", "2", "1"], tmp_path))
    assert [(p.level, p.side, p.patch, p.factor, p.name) for p in plans] == [
        (3, 4, 4, None, "levels/3"), (2, 8, 4, 2, "levels/2"), (1, 16, 4, 2, "data")]
    big = plan_chain(runs_of(tiny_config, ["uni", "2", "1"], tmp_path), size=64)
    assert [(p.level, p.side) for p in big] == [(3, 16), (2, 32), (1, 64)]
    with pytest.raises(InputError, match="whole cubes of side 4"):
        plan_chain(runs_of(tiny_config, ["3", "2", "1"], tmp_path), size=32)
    with pytest.raises(InputError, match="not a multiple"):
        plan_chain(runs_of(tiny_config, ["uni", "1"], tmp_path), size=18)
    other = dataclasses.replace(tiny_config, transform=dataclasses.replace(tiny_config.transform, c=10.0))
    with pytest.raises(InputError, match=r"run3 and \S+x disagree on transform.c: 8000 vs 10$"):
        plan_chain(runs_of(tiny_config, ["3", "2"], tmp_path) + [RunInfo(tmp_path / "x", "1", other)])
    with pytest.raises(InputError, match=r"disagree on pyramid.patch: 4 vs 2$"):
        wide = dataclasses.replace(tiny_config, pyramid=dataclasses.replace(tiny_config.pyramid, patch=2))
        plan_chain(runs_of(tiny_config, ["3", "2"], tmp_path) + [RunInfo(tmp_path / "x", "1", wide)])
    with pytest.raises(InputError, match="must start"):
        plan_chain(runs_of(tiny_config, ["2", "1"], tmp_path))
    with pytest.raises(InputError, match="coarse to fine"):
        plan_chain(runs_of(tiny_config, ["3", "1", "2"], tmp_path))
    given = plan_chain(runs_of(tiny_config, ["1"], tmp_path), given_input=True)
    assert [(p.side, p.run is None, p.name) for p in given] == [(8, True, "levels/2"), (16, False, "data")]


def with_data(config, **changes):
    import dataclasses

    return dataclasses.replace(config, data=dataclasses.replace(config.data, **changes))


def with_simulation(config, **changes):
    import dataclasses

    return with_data(config, simulation=dataclasses.replace(config.data.simulation, **changes))


def test_runs_of_a_chain_must_see_the_same_cubes(tiny_config, tmp_path):
    """Box size, data, transform and pyramid: one line naming the setting and both values, no dataclass reprs."""
    import dataclasses

    def chain(head_config, scales=("3", "2", "1")):
        return [RunInfo(tmp_path / f"r{scales[0]}", scales[0], head_config)] + runs_of(tiny_config, scales[1:],
                                                                                      tmp_path)

    cases = [
        # the case: M3 trained on 100 Mpc/h boxes, M2 and M1 on 64 Mpc/h
        (with_simulation(tiny_config, box_size=100.0), "disagree on box_size: 100 vs 64 Mpc/h"),
        (with_simulation(tiny_config, seed=8), "disagree on data.simulation.seed: 8 vs 7"),
        (with_simulation(tiny_config, boxes=5), "disagree on data.simulation.boxes: 5 vs 3"),
        (dataclasses.replace(tiny_config, transform=dataclasses.replace(tiny_config.transform, kind="released")),
         "disagree on transform.kind: released vs thesis"),
        (dataclasses.replace(tiny_config, pyramid=dataclasses.replace(tiny_config.pyramid, sizes=(16, 8, 2))),
         "disagree on pyramid.sizes: [16, 8, 2] vs [16, 8, 4]"),
        (with_data(tiny_config, simulation=None, dir="cubes", box_size=64.0),
         f"disagree on data: data.dir {tiny_config.resolve('cubes')} vs a [data.simulation] suite"),
    ]
    for head, message in cases:
        with pytest.raises(InputError) as caught:
            plan_chain(chain(head))
        text = str(caught.value)
        assert text.startswith(f"runs {tmp_path / 'r3'} and {tmp_path / 'run2'} ") and text.endswith(message), text
        assert "Config(" not in text and "\n" not in text

    # what does not change the cubes may differ: the simulation's cache, the held-out split, other settings
    same = with_simulation(with_data(tiny_config, held_out=2), cache=str(tmp_path / "elsewhere"))
    same = dataclasses.replace(same, train=dataclasses.replace(same.train, steps=9), root=str(tmp_path))
    assert [p.side for p in plan_chain(chain(same))] == [4, 8, 16]
    # a uni-scale head makes patches at any size: its pyramid may differ, its data may not
    own_pyramid = dataclasses.replace(tiny_config, pyramid=dataclasses.replace(tiny_config.pyramid, sizes=(32, 8, 4)))
    assert [p.side for p in plan_chain(chain(own_pyramid, ("uni", "2", "1")), size=32)] == [8, 16, 32]
    with pytest.raises(InputError, match="box_size: 100 vs 64"):
        plan_chain(chain(with_simulation(tiny_config, box_size=100.0), ("uni", "2", "1")), size=32)
    # two directories of cubes: the same directory agrees, and a stated box wins over the files' attribute
    cubes = tmp_path / "cubes"
    cubes.mkdir()
    from nbgan_app.cubes import write_cube

    write_cube(cubes / "a.h5", np.ones((16, 16, 16), np.float32), 64.0)
    on_files = with_data(tiny_config, simulation=None, dir=str(cubes))
    runs = [RunInfo(tmp_path / f"d{s}", s, on_files) for s in ("3", "2")]
    assert len(plan_chain(runs)) == 2
    stated = with_data(on_files, box_size=100.0)
    with pytest.raises(InputError, match="box_size: 64 vs 100 Mpc/h$"):
        plan_chain(runs + [RunInfo(tmp_path / "d1", "1", stated)])
    elsewhere = with_data(on_files, dir=str(tmp_path / "other-cubes"))
    with pytest.raises(InputError, match=f"disagree on data.dir: {cubes} vs {tmp_path / 'other-cubes'}$"):
        plan_chain(runs + [RunInfo(tmp_path / "d1", "1", elsewhere)])


def test_a_chain_names_the_scale_it_lacks(tiny_config, tmp_path):
    """M3 then M1 (M2 missing): the message names scale 2, not a --size nobody gave."""
    with pytest.raises(InputError) as caught:
        plan_chain(runs_of(tiny_config, ["3", "1"], tmp_path))
    text = str(caught.value)
    assert "scale 2 is missing between run" in text and "--size" not in text and "None" not in text, text
    # a uni-scale head makes whatever level the next run up-scales
    assert [p.side for p in plan_chain(runs_of(tiny_config, ["uni", "1"], tmp_path), size=16)] == [8, 16]
    # a side the patches do not tile cites --size only where it was given
    with pytest.raises(InputError, match=r"^--size 18: level side 18"):
        plan_chain(runs_of(tiny_config, ["uni", "1"], tmp_path), size=18)
    with pytest.raises(InputError, match=r"^output side 6 \(the given cubes' side"):
        plan_chain(runs_of(tiny_config, ["1"], tmp_path), size=6, given_input=True)


# --- workers' shards ----------------------------------------------------------------------

def test_cube_ranges_merge_into_the_file_of_one_run(tmp_path):
    """Workers' shards (`first_cube` keys the noise) merged: the single run's datasets, chunks, flags, attrs."""
    from nbgan_app.sampling import shards

    plans, coarse_side = two_level_plans(3, 4, 2, 3)
    specs = dataset_specs(plans, 3)
    attrs = {"seed": SEED, "order": "wavefront", "n_cubes": 5}

    def patch_generator(x):  # depends on the row only, like a trained generator's inference
        return (1 + 0.5 * np.abs(x[..., :1]) + 0.1 * x[..., 1:].mean(-1, keepdims=True)).astype(np.float32)

    def make(path, first, count, file_attrs):
        with SampleFile(path, specs, count, file_attrs) as f:
            run_chain(plans, [WholeFake(coarse_side, 3), patch_generator], f, count, seed=SEED, max_batch=7,
                      first_cube=first)

    make(tmp_path / "one.h5", 0, 5, attrs)
    out, parts = tmp_path / "two.h5", shards.parts_dir(tmp_path / "two.h5")
    ranges = shards.split(5, 2)
    assert ranges == [(0, 3), (3, 5)] and shards.split(2, 4) == [(0, 1), (1, 2)]
    shards.write_plan(parts, 5, ranges, attrs)
    for first, stop in ranges:
        make(shards.shard_path(parts, first, stop), first, stop - first,
             {**attrs, "n_cubes": stop - first, "first_cube": first})
    # a shard cut short (its task failed): the output is not put in place, the shards stay
    with h5py.File(shards.shard_path(parts, 3, 5), "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(RuntimeError, match="not complete"):
        shards.merge(parts, ranges, out, specs, 5, attrs, None, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5.parts"]
    with h5py.File(shards.shard_path(parts, 3, 5), "r+") as f:
        f.attrs["complete"] = True
    shards.merge(parts, ranges, out, specs, 5, attrs, None, overwrite=False)
    assert not parts.exists()
    with h5py.File(tmp_path / "one.h5", "r") as one, h5py.File(out, "r") as two:
        names = []
        one.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert {"data", "levels/2", "progress/data", "progress/frontier_data"} <= set(names)
        for name in names:
            np.testing.assert_array_equal(two[name][()], one[name][()], err_msg=name)
            assert two[name].chunks == one[name].chunks, name
        assert dict(two.attrs) == dict(one.attrs) and bool(two.attrs["complete"])
        assert one["data"][()].any() and one["progress/data"][()].all()


# --- the generators' forward pass: rows independent, compiled equals eager -----------------

@pytest.mark.parametrize("scale", ["3", "2"])
def test_a_generated_row_does_not_depend_on_the_rows_called_with_it(tiny_config, scale):
    # a backend may sum in another order at another batch size (it did here, in the last bits), which
    # made `--workers` cubes differ from one process's; the wrapper calls the model on CALL_ROWS rows only
    import keras

    from nbgan_app.models.factory import build_gan
    from nbgan_app.sampling.runs import CALL_ROWS, keras_generator

    keras.utils.set_random_seed(0)
    model = build_gan(tiny_config, scale).generator
    generate = keras_generator(model)
    x = np.random.default_rng(0).normal(size=(2 * CALL_ROWS + 3,) + tuple(model.input_shape[1:]))
    x = x.astype(np.float32)
    whole = generate(x)
    assert whole.shape == (len(x),) + tuple(model.output_shape[1:]) and whole.dtype == np.float32
    for rows in ([0, 1, 2], [len(x) - 1, 0, 5], list(range(CALL_ROWS + 1))):
        np.testing.assert_array_equal(generate(x[rows]), whole[rows])


@pytest.mark.backends
@pytest.mark.parametrize("scale", ["3", "2"])
def test_the_compiled_forward_pass_agrees_with_the_eager_one_and_follows_the_weights(tiny_config, scale):
    # sampling calls the generator through the backend's compiled function; the in-training evaluator
    # samples a generator whose weights change between calls
    import keras

    from nbgan_app.models.factory import build_gan
    from nbgan_app.sampling.forward import forward
    from nbgan_app.sampling.runs import CALL_ROWS
    from nbgan_app.sampling.sampler import to_numpy

    keras.utils.set_random_seed(0)
    model = build_gan(tiny_config, scale).generator
    x = np.random.default_rng(0).normal(size=(CALL_ROWS,) + tuple(model.input_shape[1:])).astype(np.float32)
    compiled = forward(model)
    assert forward(model).compiled is compiled.compiled  # traced once per model, not per level or evaluation
    before = to_numpy(model(x, training=False))
    np.testing.assert_allclose(to_numpy(compiled(x)), before, rtol=1e-5, atol=1e-6)
    for variable in model.trainable_variables:
        variable.assign(variable.value + 0.05)
    after = to_numpy(model(x, training=False))
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(to_numpy(compiled(x)), after, rtol=1e-5, atol=1e-6)


def test_the_compiled_forward_pass_keeps_its_model_alive_only_through_its_handle(tiny_config):
    import gc
    import weakref

    from nbgan_app.models.factory import build_gan
    from nbgan_app.sampling.forward import forward
    from nbgan_app.sampling.runs import CALL_ROWS

    model = build_gan(tiny_config, "2").generator
    x = np.zeros((CALL_ROWS,) + tuple(model.input_shape[1:]), np.float32)
    handle, gone = forward(model), weakref.ref(model)
    del model
    gc.collect()
    assert handle(x).shape[0] == CALL_ROWS  # a caller holding only the handle (the benchmarks do)
    del handle
    gc.collect()
    assert gone() is None  # the per-model cache does not keep it
