"""`nbgan bench`: which reference each train-step row is compared with, and the CLI's output rule."""

from nbgan_app.benchmarks.train_step import _reference
from nbgan_app.cli import main


def test_compiled_modes_compare_with_their_own_eager_step_first():
    results = {("tensorflow", "demo", "3", "eager"): {"median_s": 1.0},
               ("tensorflow", "demo", "3", "graph"): {"median_s": 0.1},
               ("jax", "demo", "3", "eager"): {"median_s": 4.0},
               ("jax", "demo", "3", "xla"): {"median_s": 2.0}}
    assert _reference(results, "tensorflow", "demo", "3", "graph") == ("same step, eager", {"median_s": 1.0})
    assert _reference(results, "jax", "demo", "3", "xla") == ("same step, eager", {"median_s": 4.0})
    assert _reference(results, "tensorflow", "demo", "3", "eager") == ("", None)


def test_default_modes_without_eager_compare_with_tensorflow_graph():
    results = {("tensorflow", "demo", "3", "graph"): {"median_s": 0.1},
               ("torch", "demo", "3", "eager"): {"median_s": 0.5},
               ("jax", "demo", "1", "xla"): {"median_s": 2.0}}
    assert _reference(results, "torch", "demo", "3", "eager") == ("same step, tensorflow graph",
                                                                  {"median_s": 0.1})
    # another size has no TensorFlow row to compare with
    assert _reference(results, "jax", "demo", "1", "xla") == ("", None)


def test_a_failed_reference_gives_no_ratio():
    results = {("tensorflow", "demo", "3", "graph"): {"error": "over 300 s"},
               ("torch", "demo", "3", "eager"): {"median_s": 0.5}}
    assert _reference(results, "torch", "demo", "3", "eager") == ("", None)


def test_existing_json_output_is_refused_before_any_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert main(["bench", "--quick", "--only", "binning", "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "{}"
