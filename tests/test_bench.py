"""`nbgan bench`: which reference each train-step row is compared with, and the CLI's output rule."""

from nbgan_app.benchmarks.train_step import _reference
from nbgan_app.cli import main


def test_compiled_modes_compare_with_their_own_eager_step_first():
    results = {("tensorflow", "demo", "3", "eager", False): {"median_s": 1.0},
               ("tensorflow", "demo", "3", "graph", False): {"median_s": 0.1},
               ("jax", "demo", "3", "eager", False): {"median_s": 4.0},
               ("jax", "demo", "3", "xla", False): {"median_s": 2.0}}
    assert _reference(results, ("tensorflow", "demo", "3", "graph", False)) == ("same step, eager", {"median_s": 1.0})
    assert _reference(results, ("jax", "demo", "3", "xla", False)) == ("same step, eager", {"median_s": 4.0})
    assert _reference(results, ("tensorflow", "demo", "3", "eager", False)) == ("", None)


def test_default_modes_without_eager_compare_with_tensorflow_graph():
    results = {("tensorflow", "demo", "3", "graph", False): {"median_s": 0.1},
               ("torch", "demo", "3", "eager", False): {"median_s": 0.5},
               ("jax", "demo", "1", "xla", False): {"median_s": 2.0}}
    assert _reference(results, ("torch", "demo", "3", "eager", False)) == ("same step, tensorflow graph",
                                                                           {"median_s": 0.1})
    # another size has no TensorFlow row to compare with
    assert _reference(results, ("jax", "demo", "1", "xla", False)) == ("", None)


def test_a_failed_reference_gives_no_ratio():
    results = {("tensorflow", "demo", "3", "graph", False): {"error": "over 300 s"},
               ("torch", "demo", "3", "eager", False): {"median_s": 0.5}}
    assert _reference(results, ("torch", "demo", "3", "eager", False)) == ("", None)


def test_the_step_with_onednn_off_compares_with_the_same_step_with_it_on():
    results = {("tensorflow", "demo", "1", "graph", False): {"median_s": 1.6},
               ("tensorflow", "demo", "1", "graph", True): {"median_s": 56.0},
               ("tensorflow", "demo", "3", "graph", False): {"error": "over 300 s"},
               ("tensorflow", "demo", "3", "graph", True): {"median_s": 3.0}}
    assert _reference(results, ("tensorflow", "demo", "1", "graph", True)) == ("same step, oneDNN on",
                                                                                {"median_s": 1.6})
    assert _reference(results, ("tensorflow", "demo", "3", "graph", True)) == ("", None)


def test_existing_json_output_is_refused_before_any_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert main(["bench", "--quick", "--only", "binning", "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_gpu_rows_compare_bf16_with_fp32_and_backends_with_tensorflow():
    from nbgan_app.benchmarks.gpu import train_step_rows

    results = {("tensorflow", "3", "graph", "fp32"): {"median_s": 1.0, "first_s": 5.0, "repeats": 3},
               ("tensorflow", "3", "xla", "fp32"): {"median_s": 0.5, "first_s": 9.0, "repeats": 3},
               ("tensorflow", "3", "xla", "bf16"): {"median_s": 0.25, "first_s": 9.0, "repeats": 3},
               ("jax", "3", "xla", "fp32"): {"median_s": 2.0, "first_s": 9.0, "repeats": 3},
               ("torch", "3", "eager", "bf16"): {"error": "over 150 s"}}
    rows = {row["benchmark"]: row for row in train_step_rows(results)}
    assert rows["train step paper M3 tensorflow xla bf16 (GPU)"]["ratio"] == 2.0  # against xla fp32
    assert rows["train step paper M3 tensorflow xla fp32 (GPU)"]["ratio"] == 2.0  # against graph, the default
    assert rows["train step paper M3 jax xla fp32 (GPU)"]["ratio"] == 0.5  # against tensorflow graph
    assert rows["train step paper M3 tensorflow graph fp32 (GPU)"]["ratio"] is None
    failed = rows["train step paper M3 torch eager bf16 (GPU)"]
    assert failed["ratio"] is None and failed["note"] == "over 150 s"


def test_gpu_mode_refuses_without_a_gpu_and_with_other_flags(tmp_path, capsys, monkeypatch):
    from nbgan_app.benchmarks import gpu

    monkeypatch.setattr(gpu, "visible_gpus", lambda: 0)
    out = tmp_path / "bench.json"
    assert main(["bench", "--gpu", "--quick"]) == 2
    assert "--gpu" in capsys.readouterr().err
    assert main(["bench", "--gpu", "--json", str(out)]) == 2
    assert "no GPU" in capsys.readouterr().err
    assert not out.exists()
