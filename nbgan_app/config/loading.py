"""TOML to a checked `Config`, and back to a plain table.

The loader is strict: an unknown key, a key of another model section, a wrong
type or a value out of sense raises `InputError` naming the key. A config file
may name a `base` config, read first and overlaid table by table.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path

from nbgan_app import scales
from nbgan_app.config.checks import validate
from nbgan_app.config.sections import SECTION_MODELS, Config, ModelConfig
from nbgan_app.errors import InputError

_NOT_IN_TOML = ("root", "source")  # Config's fields that come from where the file was read


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str):
    """Convert a TOML value to the annotated type, or raise InputError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, options[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{key}: expected a table. Received: {value!r}")
        return from_table(tp, value, key + ".")
    if origin is tuple:
        (item_type, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise InputError(f"{key}: expected a list of {_type_name(item_type)}. Received: {value!r}")
        return tuple(_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise InputError(f"{key}: expected {tp.__name__}. Received: {value!r}")
    if tp is float and not math.isfinite(value):
        raise InputError(f"{key}: expected a finite number. Received: {value!r}")
    return value


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


_ALL_MODEL_KEYS = set().union(*(_field_names(cls) for cls in SECTION_MODELS.values()))


def _refuse_other_sections_keys(cls, table: dict, prefix: str) -> None:
    """InputError naming the first key of `table` that is another model section's, not `cls`'s."""
    for key in sorted(set(table) - _field_names(cls)):
        owners = [scales.of_section(section).title for section, owner in SECTION_MODELS.items()
                  if key in _field_names(owner)]
        if owners:
            raise InputError(f"{prefix}{key}: not a key of [{prefix.rstrip('.')}] ({' and '.join(owners)} only)")


def from_table(cls, table: dict, prefix: str = ""):
    """An instance of the dataclass `cls` from a TOML table whose keys sit under `prefix` (for messages);
    InputError naming the first unknown, missing or mistyped key."""
    if issubclass(cls, ModelConfig):
        _refuse_other_sections_keys(cls, table, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name not in _NOT_IN_TOML}
    unknown = sorted(set(table) - names)
    if unknown:
        raise InputError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in table.items()}
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise InputError(f"missing config key {prefix}{missing[0]}") from None


def parse_config(table: dict, root: str | Path = ".", source: str | Path = "", saved: bool = False) -> Config:
    """A config table (TOML's, or with `saved` a run directory's: see `validate`) as a checked Config."""
    config = from_table(Config, table)
    return validate(dataclasses.replace(config, root=str(root), source=str(source)), saved=saved)


def parse_saved_config(table: dict, root: str | Path = ".", source: str | Path = "") -> Config:
    """A run directory's saved config (config.json's "config"), read as `parse_config` reads TOML,
    except that model keys of another section are dropped.

    Run directories made before each section took only its own keys hold every
    model key under every section (e.g. m2.latent_dim); there only the
    section's own ones ever took effect, so dropping the rest loses nothing.
    Unknown keys are still refused; the evaluation counts a new run needs are
    not checked (`validate`).
    """
    table = dict(table)
    for section, cls in SECTION_MODELS.items():
        if isinstance(table.get(section), dict):
            foreign = _ALL_MODEL_KEYS - _field_names(cls)
            table[section] = {k: v for k, v in table[section].items() if k not in foreign}
    return parse_config(table, root, source, saved=True)


def read_toml(path: str | Path, what: str = "config file") -> dict:
    """The table of a TOML file; InputError naming the file when it is missing or not TOML."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; expected a TOML file")
    if not path.is_file():
        raise InputError(f"no such {what}: {path}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None


def project_root(config_path: str | Path) -> Path:
    """The directory a config file's relative paths resolve against (absolute).

    The parent of its directory when the file sits in a `configs/` directory
    (configs/demo.toml -> the repository), else the file's own directory.
    """
    parent = Path(config_path).resolve().parent
    return parent.parent if parent.name == "configs" else parent


def merge_tables(base: dict, top: dict) -> dict:
    """`base` with `top`'s keys put in, table by table: a key `top` names replaces base's value, and
    a table in both is merged the same way (so `[m1] upscaler = "split"` keeps [m1]'s other keys)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge_tables(merged[key], value)
        merged[key] = value
    return merged


def read_config_table(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's table, with its `base` (another config file, relative to this one's directory)
    read first and this file's keys merged over it (`merge_tables`); a base may have a base."""
    path = Path(path)
    table = read_toml(path, "config file" if not _seen else f"base of {_seen[-1]}")
    base = table.pop("base", None)
    if base is None:
        return table
    if not isinstance(base, str):
        raise InputError(f"{path}: base: expected the path of a config file. Received: {base!r}")
    seen = (*_seen, path.resolve())
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise InputError(f"{path}: base {base} leads back to a file already read (a cycle of bases)")
    return merge_tables(read_config_table(base_path, seen), table)


def load_config(path: str | Path) -> Config:
    """Load and validate a TOML config (with its `base`, if it names one: `read_config_table`);
    relative data paths resolve against `project_root(path)`."""
    path = Path(path)
    return parse_config(read_config_table(path), project_root(path), path.resolve())


def to_dict(config: Config) -> dict:
    """The config as a plain dict (tuples as lists, None dropped), for writing TOML/JSON."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (tuple, list)):
            return [clean(v) for v in value]
        return value
    table = clean(dataclasses.asdict(config))
    for key in _NOT_IN_TOML:
        table.pop(key, None)
    return table
