"""Benchmarks collected by `nbgan bench`: each module exposes `run(quick: bool) -> list[dict]`."""
