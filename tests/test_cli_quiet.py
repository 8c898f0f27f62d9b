"""The backends' start-up chatter stays off the command line's stderr (`nbgan_app/quiet.py`).

End to end, as processes: a bad input that `train`, `sample` or `upscale` finds after TensorFlow has been
imported prints exactly one line on stderr, its error. In-process: the import hook captures what a backend
writes to file descriptor 2 while it loads, drops it when the import succeeds and replays it when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbgan_app import quiet

ROOT = Path(__file__).resolve().parents[1]

# The real CLI's main, then whether TensorFlow was imported (on stdout): a case that never imported the
# backend would prove nothing about its chatter.
PROBE = ("import sys\nfrom nbgan_app.cli import main\ncode = main(sys.argv[1:])\n"
         "print('backend imported' if 'tensorflow' in sys.modules else 'backend not imported')\nsys.exit(code)")


def run_probe(argv, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(KERAS_BACKEND="tensorflow", **env)
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300)


def truncated_copy(run, tmp_path):
    """A copy of a tiny run whose only generator.keras is cut short: loading it imports Keras, then fails."""
    copy = tmp_path / "truncated"
    shutil.copytree(run, copy)
    (model,) = copy.glob("checkpoints/step-*/generator.keras")
    model.write_bytes(model.read_bytes()[:2000])
    return copy


@pytest.mark.parametrize("command", ["train", "sample", "upscale"])
def test_the_error_is_the_only_line_on_stderr(command, tiny_runs, tiny_toml, tmp_path):
    from nbgan_app.cubes import write_cube

    env = {}
    if command == "train":  # a run of another scale, found once the backend is known
        run = tmp_path / "run"
        shutil.copytree(tiny_runs["3"], run)
        argv = ["train", "--config", tiny_toml, "--scale", "2", "--run-dir", run, "--quiet"]
        env = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # the setting, which alone did not help
        culprit = "--scale 2"
    elif command == "sample":
        chain = f"{tiny_runs['3']},{tiny_runs['2']},{truncated_copy(tiny_runs['1'], tmp_path)}"
        argv = ["sample", "--chain", chain, "--n", "1", "--out", tmp_path / "out.h5", "--quiet"]
        culprit = "generator.keras"
    else:
        import numpy as np

        low = write_cube(tmp_path / "low.h5", np.ones((1, 8, 8, 8), np.float32), 64.0)
        argv = ["upscale", "--run", truncated_copy(tiny_runs["1"], tmp_path), "--input", low,
                "--out", tmp_path / "up.h5", "--quiet"]
        culprit = "generator.keras"
    done = run_probe(argv, **env)
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "backend imported"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"nbgan {command}: error: ") and culprit in lines[0], lines[0]


def test_help_imports_no_backend():
    code = ("import sys\nfrom nbgan_app.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- the import hook, on stand-in backend packages that write to descriptor 2 as TensorFlow's libraries do

@pytest.fixture
def fake_backends(tmp_path, monkeypatch):
    """Packages `fakebackend_outer` (imports `fakebackend_inner`) and `fakebackend_broken`, taken for backends."""
    for name, body in {
        "fakebackend_inner": "import os\nos.write(2, b'inner chatter\\n')\n",
        "fakebackend_outer": "import os\nos.write(2, b'outer chatter\\n')\nimport fakebackend_inner\nVALUE = 42\n",
        "fakebackend_broken": "import os\nos.write(2, b'why it broke\\n')\nraise ImportError('missing libfoo.so')\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(quiet, "BACKEND_MODULES", frozenset({"fakebackend_outer", "fakebackend_inner",
                                                             "fakebackend_broken"}))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    yield
    for name in ("fakebackend_outer", "fakebackend_inner", "fakebackend_broken"):
        sys.modules.pop(name, None)


def test_a_backend_that_loads_prints_nothing(fake_backends, capfd):
    finders = list(sys.meta_path)
    with quiet.backend_imports():
        import fakebackend_outer
    assert sys.meta_path == finders  # the hook is gone with the block
    assert fakebackend_outer.VALUE == 42 and "fakebackend_inner" in sys.modules
    # the module looks as a plain import leaves it: the real loader, not the wrapper
    assert type(fakebackend_outer.__loader__).__name__ == "SourceFileLoader"
    assert fakebackend_outer.__spec__.loader is fakebackend_outer.__loader__
    assert capfd.readouterr().err == ""
    os.write(2, b"ours\n")  # descriptor 2 is back where it was
    assert capfd.readouterr().err == "ours\n"


def test_a_backend_that_fails_to_load_shows_what_it_printed(fake_backends, capfd):
    with pytest.raises(ImportError, match="missing libfoo.so"):
        with quiet.backend_imports():
            import fakebackend_broken  # noqa: F401
    assert capfd.readouterr().err == "why it broke\n"


def test_log_level_0_shows_the_start_up_log(fake_backends, capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with quiet.backend_imports():
        import fakebackend_outer  # noqa: F401
    assert capfd.readouterr().err == "outer chatter\ninner chatter\n"


def test_other_imports_are_left_alone(fake_backends, capfd, monkeypatch):
    monkeypatch.setattr(quiet, "BACKEND_MODULES", frozenset())
    with quiet.backend_imports():
        import fakebackend_outer  # noqa: F401
    assert capfd.readouterr().err == "outer chatter\ninner chatter\n"
