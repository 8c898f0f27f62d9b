"""Run settings, read from TOML.

- `sections`: one frozen dataclass per table, with its defaults, units and conventions;
- `loading`: the strict loader (an unknown key, a key of another model section or a wrong type
  raises `InputError` naming the key), `base` files, and the way back to a plain table;
- `checks`: the values' sense and the sections' agreement.
"""

from nbgan_app.config.checks import validate
from nbgan_app.config.loading import (
    from_table, load_config, merge_tables, parse_config, parse_saved_config, project_root, read_config_table,
    read_toml, to_dict,
)
from nbgan_app.config.sections import (
    ARCHITECTURES, SECTION_MODELS, Config, CubeModelConfig, DataConfig, DemoConfig, ModelConfig, PatchModelConfig,
    PyramidConfig, SampleConfig, SimulationConfig, TrainConfig, TransformConfig, UpscalerConfig,
)

__all__ = [
    "ARCHITECTURES", "SECTION_MODELS", "Config", "CubeModelConfig", "DataConfig", "DemoConfig", "ModelConfig",
    "PatchModelConfig", "PyramidConfig", "SampleConfig", "SimulationConfig", "TrainConfig", "TransformConfig",
    "UpscalerConfig", "from_table", "load_config", "merge_tables", "parse_config", "parse_saved_config",
    "project_root", "read_config_table", "read_toml", "to_dict", "validate",
]
