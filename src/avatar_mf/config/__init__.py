"""Configuration: typed settings read from a TOML file, overridden by ``AVATAR_MF_*`` variables.

Every setting lives in a section (``[sip]``, ``[media]``, ``[storage]``, ``[log]``, ``[admin]``,
``[lifecycle]``, ``[bootstrap]``, ``[pipeline]`` with a table per stage kind), each a frozen
pydantic model that rejects unknown keys. :func:`load_config` reads a TOML file (or the defaults
embedded in the package), applies environment overrides and validates everything at once: a
:class:`ConfigError` lists *every* problem, each with the key path, the file and line (or the
environment variable) it came from, so that an operator fixes a config file in one pass::

    configs/bad.toml:7: sip.port: Input should be less than or equal to 65535 (got 70000)

Environment overrides are named ``AVATAR_MF_<SECTION>__<KEY>`` (double underscore between
section and key, and between the keys of a nested table: ``AVATAR_MF_PIPELINE__SCENE__NAME``),
e.g. ``AVATAR_MF_SIP__PORT=5070``. Lists are given comma-separated (``udp,tcp``) or as a
JSON/TOML array; tables (``log.modules``, a stage's ``options``) as JSON, a TOML inline table or
``name=VALUE,...``; an empty value clears an optional setting. An ``AVATAR_MF_`` variable that
names no setting is an error: a typo must not be silently ignored.

Nothing here reads global state: the environment is passed in (the CLI passes ``os.environ``).

The modules: :mod:`.sections` (the models), :mod:`.fields` (value types and their checks),
:mod:`.catalogue` (every setting, for the docs), :mod:`.env` (overrides), :mod:`.loader`
(reading and validating), :mod:`.toml_lines` (the line of each key), :mod:`.dump` (writing a
configuration back), :mod:`.problems` (what is wrong, and where).
"""

from avatar_mf.config.catalogue import ENV_PREFIX, SettingInfo, env_var_name, iter_settings
from avatar_mf.config.dump import dump_json, dump_toml
from avatar_mf.config.fields import LogLevelName, Transport
from avatar_mf.config.loader import EMBEDDED_DEFAULT_SOURCE, load_config
from avatar_mf.config.problems import ConfigError, ConfigProblem, KeyPath, format_key_path
from avatar_mf.config.sections import (
    STAGE_KINDS,
    AdminConfig,
    AnimationDataSettings,
    AppConfig,
    BootstrapConfig,
    CallsConfig,
    LifecycleConfig,
    LogConfig,
    MediaConfig,
    PipelineConfig,
    SceneStageSettings,
    SipConfig,
    StageSettings,
    StorageConfig,
)
from avatar_mf.config.toml_lines import toml_key_lines

__all__ = [
    "ENV_PREFIX",
    "EMBEDDED_DEFAULT_SOURCE",
    "STAGE_KINDS",
    "AdminConfig",
    "AnimationDataSettings",
    "AppConfig",
    "BootstrapConfig",
    "CallsConfig",
    "ConfigError",
    "ConfigProblem",
    "KeyPath",
    "LifecycleConfig",
    "LogConfig",
    "LogLevelName",
    "MediaConfig",
    "PipelineConfig",
    "SceneStageSettings",
    "SettingInfo",
    "SipConfig",
    "StageSettings",
    "StorageConfig",
    "Transport",
    "dump_json",
    "dump_toml",
    "env_var_name",
    "format_key_path",
    "iter_settings",
    "load_config",
    "toml_key_lines",
]
