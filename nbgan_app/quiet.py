"""Keep the numerical backends' start-up chatter off the command line's stderr.

Importing TensorFlow prints, twice, before anything of nbgan's can run:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:...  port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:...  cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

These come from C++ static initialisers of TensorFlow's shared libraries (absl
logging, which writes every message to file descriptor 2 until
absl::InitializeLog() is called, whatever TF_CPP_MIN_LOG_LEVEL says; abseil
has no setting for it). Later C++ messages obey TF_CPP_MIN_LOG_LEVEL, which
the CLI sets to 3 unless the user set it. So the only way to silence the
start-up lines is to point descriptor 2 elsewhere while the library loads:
`backend_imports()` does that around the first import of each backend module
and nothing else. What was captured is written back to stderr if the import
fails, so a real import error is never hidden; it is dropped when the import
succeeds.

Keras imports TensorFlow for training under every backend, so the same lines
appear with KERAS_BACKEND=jax or torch; jax and torch themselves print nothing
when they load on a CPU, and are captured in case their libraries log on other
machines. Python warnings issued while a backend loads are captured with the
rest; nbgan's own code never runs inside the capture.

`TF_CPP_MIN_LOG_LEVEL=0` (TensorFlow's and XLA's "log everything") turns the
capture off, for whoever wants to see the start-up log.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
import tempfile
import threading
from typing import Iterator

# Top-level packages whose first import loads C++ libraries that log at load time.
BACKEND_MODULES = frozenset({"keras", "tensorflow", "jax", "jaxlib", "torch"})


@contextlib.contextmanager
def captured_fd2() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; replay it to stderr if the block raises.

    Descriptor level, not `sys.stderr`: C++ code writes to the descriptor.
    Without a descriptor 2 or a temporary file to hold it, the block runs as it is.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    with capture:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            except BaseException:
                _restore(saved)
                capture.seek(0)
                _write_all(2, capture.read())
                raise
            finally:
                _restore(saved)
        finally:
            os.close(saved)


def _restore(saved: int) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()  # Python-level writes made during the capture belong to the capture
    os.dup2(saved, 2)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader with descriptor 2 captured, then leaves the module as a plain import would."""

    def __init__(self, loader: importlib.abc.Loader, finder: "_BackendFinder"):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module keeps the real loader: later introspection or reloads never see this wrapper.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with self._finder.capturing():
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _BackendFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of the backend packages in `_QuietLoader`."""

    def __init__(self):
        self._local = threading.local()
        self._depth = 0
        self._lock = threading.Lock()

    def find_spec(self, name, path=None, target=None):
        if name not in BACKEND_MODULES or getattr(self._local, "searching", False):
            return None
        self._local.searching = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        finally:
            self._local.searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _QuietLoader(spec.loader, self)
        return spec

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Capture descriptor 2 for the outermost backend import only (keras imports tensorflow)."""
        with self._lock:
            self._depth += 1
            outermost = self._depth == 1
        try:
            if outermost:
                with captured_fd2():
                    yield
            else:
                yield
        finally:
            with self._lock:
                self._depth -= 1


@contextlib.contextmanager
def backend_imports() -> Iterator[None]:
    """While active, the first import of a backend package runs with its start-up log captured."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    finder = _BackendFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
