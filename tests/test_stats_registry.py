"""The statistics registry: every consumer follows it, so that a new statistic is one entry there."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest

from nbgan_app.stats import registry
from nbgan_app.stats.report import markdown_score_table, score_table
from nbgan_app.stats.scores import compare
from nbgan_app.stats.summary import summary

COUNT_EDGES = np.array([0.0, 1.0, 2.0, 3.0, 12.0])


def _count_histogram(batch: np.ndarray, options: registry.Options) -> tuple[np.ndarray, np.ndarray]:
    """Voxels per cube in bins of log2(x + 1): a stand-in for a statistic a contributor adds."""
    samples = np.stack([np.histogram(np.log2(field + 1.0), COUNT_EDGES)[0] for field in batch])
    return COUNT_EDGES, samples.astype(np.float64)


EXTRA = registry.StatisticSpec(
    name="count_hist", title="count histogram", short_title="count hist", label="count", axis="edges",
    x_label="log2(x + 1)", y_label="voxels per cube", log_x=False, log_y=True, compute=_count_histogram,
)


@pytest.fixture
def extra_statistic(monkeypatch):
    """The registry with one more statistic appended, as a contributor would add it."""
    monkeypatch.setattr(registry, "STATISTICS", (*registry.STATISTICS, EXTRA))
    return EXTRA


def cubes(n: int, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(np.exp(sigma * rng.normal(size=(n, 8, 8, 8))) * 6).astype(np.float32)


def test_registry_entries_are_unique_and_well_formed():
    names = registry.names()
    assert names == ("psd", "mass_hist", "peak_hist")
    assert len(set(names)) == len(names)
    for spec in registry.STATISTICS:
        assert registry.get(spec.name) is spec
        assert spec.axis in registry.AXES and spec.title and spec.short_title and spec.label
        assert spec.x_label and spec.y_label and callable(spec.compute)
    assert registry.get("psd").y_label_for(2) == "P(k) [(Mpc/h)^2]"
    with pytest.raises(KeyError, match="psd, mass_hist, peak_hist"):
        registry.get("bispectrum")
    with pytest.raises(ValueError, match="axis"):
        registry.StatisticSpec("x", "x", "x", "x", "centres", "x", "y", False, False, _count_histogram)


def test_bin_x_keeps_k_and_centres_edges():
    assert registry.get("psd").bin_x([0.1, 0.2]).tolist() == [0.1, 0.2]
    assert registry.get("mass_hist").bin_x([0.0, 1.0, 3.0]).tolist() == [0.5, 2.0]


def test_every_entry_is_computed_in_registry_order():
    result = summary(cubes(2, 1.0, 0), 64.0)
    assert list(result)[2:] == list(registry.names())
    for spec in registry.STATISTICS:
        assert list(result[spec.name]) == [spec.axis, "mean", "std"]


def test_a_new_statistic_reaches_summary_compare_and_the_tables(extra_statistic):
    real, fake = cubes(4, 1.0, 0), cubes(3, 0.7, 1)
    stats = summary(real, 64.0)
    assert list(stats)[-1] == "count_hist"
    assert stats["count_hist"]["edges"] == COUNT_EDGES.tolist()
    assert sum(stats["count_hist"]["mean"]) == pytest.approx(8**3)
    result = compare(real, fake, 64.0)
    block = result["count_hist"]
    assert {"edges", "real", "fake", "score", "log_l2", "frac_diff", "floor"} <= set(block)
    assert result["log_l2_total"] == pytest.approx(sum(result[n]["log_l2"] for n in registry.names()))
    assert score_table(result).splitlines()[-1].startswith("count_hist ")
    assert markdown_score_table(result)[-1].startswith("| count_hist | ")


def test_a_new_statistic_reaches_the_study_report_and_the_figures(extra_statistic):
    from nbgan_app.study import report

    result = compare(cubes(4, 1.0, 0), cubes(3, 0.7, 1), 64.0)
    row = dict(name="chain", label="chain", side=8, scores=result, seconds_per_cube=0.1, time_note="t", training=[])
    table = report.score_table([row])
    assert "| count score |" in table[0] and len(table[0].split("|")) == len(table[1].split("|"))
    verdict = report.verdicts({"rows": [row, {**row, "name": "mu"}], "chain_m1": "m1-x"})[0]
    assert "(of PSD, mass, peak, count)" in verdict
    pytest.importorskip("matplotlib")
    from nbgan_app.plots import compare_figure

    figure = compare_figure(result)
    assert len(figure.axes) == 2 * len(registry.STATISTICS)
    assert [ax.get_xlabel() for ax in figure.axes[len(registry.STATISTICS):]][-1] == "log2(x + 1)"


def test_a_new_statistic_reaches_the_dashboard(extra_statistic):
    pytest.importorskip("textual")
    from textual.app import App

    from tui import samples
    from tui.widgets.stat_plot import StatPlot
    from tui.widgets.stats_panel import StatsPanel, scores_line

    result = compare(cubes(4, 1.0, 0), cubes(3, 0.7, 1), 64.0)
    pair = samples.from_compare(result)
    assert samples.check_stats(pair["real"]) and samples.check_stats(pair["fake"])
    without = {k: v for k, v in pair["real"].items() if k != "count_hist"}
    assert not samples.check_stats(without)
    assert "count_hist " in scores_line(result)

    class One(App):
        def compose(self):
            yield StatsPanel()

    async def go():
        app = One()
        async with app.run_test(size=(120, 30)) as pilot:
            app.query_one(StatsPanel).show(pair)
            await pilot.pause(0.2)
            plot = app.query_one("#stat-count_hist", StatPlot)
            assert len(plot.frac) == len(COUNT_EDGES) - 1
            assert "cannot draw" not in str(plot.render())

    asyncio.run(go())


def test_reading_the_registry_does_not_load_scipy():
    """The dashboard imports the registry at start-up; scipy loads only when a statistic is computed."""
    code = "import sys, nbgan_app.stats.registry; sys.exit(3 if 'scipy' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
