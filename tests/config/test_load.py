"""load_config: defaults, files, environment overrides, and how problems are reported."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from avatar_mf import __version__
from avatar_mf.config import (
    EMBEDDED_DEFAULT_SOURCE,
    AppConfig,
    ConfigError,
    ConfigProblem,
    LogConfig,
    MediaConfig,
    SettingInfo,
    SipConfig,
    StorageConfig,
    dump_json,
    dump_toml,
    iter_settings,
    load_config,
)

from .conftest import REPO

WriteConfig = Callable[..., Path]
SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation
    for name, field in AppConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
SETTINGS = list(iter_settings())
EMBEDDED = REPO / "src" / "avatar_mf" / "configs" / "default.toml"


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


# --------------------------------------------------------------------------- defaults


def test_defaults_load_without_a_file() -> None:
    config = load_config(None, env={})
    assert config == AppConfig()
    assert config.sip.port == 5060
    assert config.sip.transports == ("udp", "tcp")
    assert config.sip.trusted_peers == (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))
    assert config.sip.user_agent == f"avatar-mf/{__version__}"
    assert config.sip.contact_host == "127.0.0.1"
    assert config.media.bootstrap_stream_ids == (0, 10, 100, 110)
    assert config.dtls_certificate_dir == Path("var/storage/dtls")
    assert config.log.modules == {}


def test_model_defaults_are_valid() -> None:
    default = AppConfig()
    assert AppConfig.model_validate(default.model_dump()) == default


def test_repository_default_toml_is_the_packaged_one() -> None:
    assert (REPO / "configs" / "default.toml").read_bytes() == EMBEDDED.read_bytes()


def test_default_toml_lists_every_setting() -> None:
    """Each key is set in default.toml, or shown commented out when its default can't be
    written there (unset optional settings, the version-derived User-Agent)."""
    text = EMBEDDED.read_text()
    data = tomllib.loads(text)
    for info in SETTINGS:
        table = data
        for part in info.path[:-1]:
            table = table[part]
        if info.path[-1] in table:
            continue
        assert f"# {info.key} = " in text, f"{info.key_path} is missing from default.toml"
        assert info.default is None or info.key_path == "sip.user_agent"


def test_example_lab_config_is_valid() -> None:
    config = load_config(REPO / "configs" / "example-lab.toml", env={})
    assert config.sip.host == "0.0.0.0"
    assert config.sip.contact_host == "192.0.2.10"
    assert config.sip.is_trusted("192.0.2.77")
    assert config.log.modules["avatar_mf.sip"] == "DEBUG"


@pytest.mark.parametrize("info", SETTINGS, ids=lambda i: i.key_path)
def test_every_setting_is_documented(info: SettingInfo) -> None:
    assert len(info.description) > 20
    assert info.type_label


def test_configs_are_frozen() -> None:
    config = AppConfig()
    with pytest.raises(ValidationError):
        config.sip.port = 1


# --------------------------------------------------------------------------- environment


def owner_model(info: SettingInfo) -> type[BaseModel]:
    """The model that declares ``info``'s key: its section, or the nested table it is in."""
    model = SECTIONS[info.section]
    for part in info.path[1:-1]:
        nested = model.model_fields[part].annotation
        assert isinstance(nested, type) and issubclass(nested, BaseModel)
        model = nested
    return model


def nest(path: tuple[str, ...], value: object) -> object:
    """``("scene", "name"), "x"`` -> ``{"scene": {"name": "x"}}``."""
    for part in reversed(path):
        value = {part: value}
    return value


def lookup(value: object, path: tuple[str, ...]) -> object:
    for part in path:
        value = getattr(value, part)
    return value


def env_sample(info: SettingInfo) -> tuple[str, Any]:
    """A valid non-default value for ``info`` as (environment string, equivalent TOML value),
    derived from the setting's type and default: no per-setting table."""
    schema = owner_model(info).model_json_schema()["properties"][info.path[-1]]
    default = info.default
    if "enum" in schema:
        value = next(choice for choice in schema["enum"] if choice != default)
        return value, value
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int | float):
        step = 1 if isinstance(default, int) else 0.5
        value = default + step
        if value > schema.get("maximum", value):  # the default is the maximum: go down
            value = default - step
        return str(value), value
    if isinstance(default, list) and not default:
        # An empty list (sip.ws_origins): one web origin, valid for a list of strings too.
        return "http://127.0.0.2:8000", ["http://127.0.0.2:8000"]
    if isinstance(default, list):
        return ",".join(str(v) for v in default[:1]), default[:1]
    if isinstance(default, dict):
        return "avatar_mf.test=DEBUG", {"avatar_mf.test": "DEBUG"}
    # Strings, paths and unset optionals: an IP literal is valid for every one of them.
    return "127.0.0.2", "127.0.0.2"


@pytest.mark.parametrize("info", SETTINGS, ids=lambda i: i.env_var)
def test_every_setting_can_be_overridden_from_the_environment(
    info: SettingInfo, write_config: WriteConfig
) -> None:
    raw, value = env_sample(info)
    path = write_config(f"[{info.section}]\n")
    config = load_config(path, env={info.env_var: raw})
    got = lookup(config, info.path)
    model = SECTIONS[info.section]
    assert got == lookup(model.model_validate(nest(info.path[1:], value)), info.path[1:])
    assert got != lookup(model(), info.path[1:])


def test_every_setting_is_covered() -> None:
    def keys(model: type[BaseModel], prefix: str) -> set[str]:
        found = set()
        for key, field in model.model_fields.items():
            nested = field.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                found |= keys(nested, f"{prefix}.{key}")  # a table of settings: its keys
            else:
                found.add(f"{prefix}.{key}")
        return found

    fields = set().union(*(keys(model, section) for section, model in SECTIONS.items()))
    assert {info.key_path for info in SETTINGS} == fields
    assert "pipeline.scene.name" in fields
    assert list(SECTIONS) == [
        "sip", "media", "storage", "log", "admin", "lifecycle", "bootstrap", "pipeline", "calls",
        "render",
    ]


def test_environment_wins_over_the_file(write_config: WriteConfig) -> None:
    path = write_config("[sip]\nport = 5080\nhost = '127.0.0.3'\n")
    config = load_config(path, env={"AVATAR_MF_SIP__PORT": "5070", "HOME": "/x"})
    assert config.sip.port == 5070
    assert config.sip.host == "127.0.0.3"


@pytest.mark.parametrize(
    "raw",
    ["udp", " udp ", '["udp"]', "['udp']", "UDP"],
)
def test_list_forms(raw: str) -> None:
    assert load_config(None, env={"AVATAR_MF_SIP__TRANSPORTS": raw}).sip.transports == ("udp",)


def test_list_of_networks_from_environment() -> None:
    env = {"AVATAR_MF_SIP__TRUSTED_PEERS": "10.0.0.0/8, 2001:db8::/32"}
    config = load_config(None, env=env)
    assert [str(n) for n in config.sip.trusted_peers] == ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"avatar_mf.sip": "DEBUG", "aioice": "WARNING"}',
        '{ "avatar_mf.sip" = "DEBUG", aioice = "WARNING" }',
        "avatar_mf.sip=DEBUG, aioice=warning",
    ],
)
def test_table_forms(raw: str) -> None:
    config = load_config(None, env={"AVATAR_MF_LOG__MODULES": raw})
    assert config.log.modules == {"avatar_mf.sip": "DEBUG", "aioice": "WARNING"}


def test_empty_value_clears_an_optional_setting(write_config: WriteConfig) -> None:
    path = write_config('[sip]\nadvertised_host = "mf.lab.example"\n')
    assert load_config(path, env={}).sip.contact_host == "mf.lab.example"
    config = load_config(path, env={"AVATAR_MF_SIP__ADVERTISED_HOST": ""})
    assert config.sip.advertised_host is None


def test_environment_variable_names_are_case_insensitive_after_the_prefix() -> None:
    assert load_config(None, env={"AVATAR_MF_sip__Port": "5071"}).sip.port == 5071


@pytest.mark.parametrize(
    ("name", "key_path", "hint"),
    [
        ("AVATAR_MF_SIP__PROT", "sip.prot", "AVATAR_MF_SIP__PORT"),
        ("AVATAR_MF_SIP_PORT", "", "AVATAR_MF_SIP__PORT"),
        ("AVATAR_MF_SIPP__PORT", "sipp.port", "AVATAR_MF_SIP__PORT"),
        ("AVATAR_MF_LOG__MODULES__AVATAR_MF", "", None),
        ("AVATAR_MF_CONFIG", "", None),
    ],
)
def test_unknown_environment_variables_are_errors(
    name: str, key_path: str, hint: str | None
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, env={name: "5060", "AVATAR_MFX": "1", "PATH": "/bin"})
    [problem] = excinfo.value.problems
    assert problem.source == f"env {name}"
    assert problem.key_path == key_path
    assert problem.line is None
    assert problem.message.startswith("unknown variable")
    if hint:
        assert f"did you mean {hint}?" in problem.message


def test_bad_environment_values_are_reported_with_the_variable() -> None:
    env = {
        "AVATAR_MF_SIP__PORT": "50 60",
        "AVATAR_MF_LOG__MODULES": "avatar_mf.sip",
        "AVATAR_MF_MEDIA__BOOTSTRAP_STREAM_IDS": "[0, 10",
    }
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, env=env)
    assert problems_of(excinfo) == [
        "env AVATAR_MF_LOG__MODULES: log.modules: expected name=VALUE pairs, a JSON object or "
        'a TOML inline table (got "avatar_mf.sip")',
        "env AVATAR_MF_MEDIA__BOOTSTRAP_STREAM_IDS: media.bootstrap_stream_ids: not a JSON or "
        'TOML array (got "[0, 10")',
        # Types are strict: text that is no integer stays text, which an integer refuses.
        'env AVATAR_MF_SIP__PORT: sip.port: Input should be a valid integer (got "50 60")',
    ]


def test_load_config_reads_os_environ_when_env_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATAR_MF_SIP__PORT", "5099")
    assert load_config(None).sip.port == 5099


# --------------------------------------------------------------------------- file problems


def test_unknown_keys_and_sections_in_the_file(write_config: WriteConfig) -> None:
    path = write_config("[sip]\nprot = 5060\n[sipp]\nport = 1\n[log]\nlevle = 'DEBUG'\nzzz = 1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    assert problems_of(excinfo) == [
        f"{path}:2: sip.prot: unknown setting (did you mean sip.port?)",
        f"{path}:3: sipp: unknown setting (did you mean sip?)",
        f"{path}:6: log.levle: unknown setting (did you mean log.level?)",
        f"{path}:7: log.zzz: unknown setting",
    ]


def test_all_problems_are_reported_at_once_with_lines(write_config: WriteConfig) -> None:
    path = write_config(
        "# lab\n"  # 1
        "[sip]\n"  # 2
        "port = 70000\n"  # 3
        "transports = [\n"  # 4
        '  "udp",\n'  # 5
        '  "sctp",\n'  # 6
        "]\n"  # 7
        'trusted_peers = ["10.0.0.1/8"]\n'  # 8
        "[media]\n"  # 9
        "sctp_port = 0\n"  # 10
        "[log.modules]\n"  # 11
        '"avatar_mf.sip" = "LOUD"\n'  # 12
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={"AVATAR_MF_STORAGE__PATH": ""})
    assert problems_of(excinfo) == [
        f"{path}:3: sip.port: Input should be less than or equal to 65535 (got 70000)",
        f"{path}:6: sip.transports[1]: Input should be 'udp', 'tcp', 'tls', 'ws' or 'wss' "
        '(got "sctp")',
        f"{path}:8: sip.trusted_peers[0]: not a valid IP network: 10.0.0.1/8 has host bits set "
        '(got "10.0.0.1/8")',
        f"{path}:10: media.sctp_port: Input should be greater than or equal to 1 (got 0)",
        f"{path}:12: log.modules.\"avatar_mf.sip\": Input should be 'DEBUG', 'INFO', "
        "'WARNING', 'ERROR' or 'CRITICAL' (got \"LOUD\")",
        'env AVATAR_MF_STORAGE__PATH: storage.path: must name a directory (got "")',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The failing key is in the file.
        ("[sip]\nt1 = 1.0\nt2 = 0.8\n", ":3: sip.t2: must be greater than sip.t1 (1.0) (got 0.8)"),
        # Only the other key is in the file: point at it.
        ("[sip]\n\nt1 = 5.0\n", ":3: sip.t2: must be greater than sip.t1 (5.0) (got 4.0)"),
        (
            "[sip]\nmin_se = 3600\n",
            ":2: sip.session_expires: must be greater than or equal to sip.min_se (3600) "
            "(got 1800)",
        ),
        (
            "[sip]\nsession_expires = 100\nmin_se = 120\n",
            ":2: sip.session_expires: must be greater than or equal to sip.min_se (120) (got 100)",
        ),
        ("[sip]\nmin_se = 60\n", ":2: sip.min_se: Input should be greater than or equal to 90"),
        (
            "[sip]\n\nhost = '::'\n",
            ":3: sip.advertised_host: must be set when sip.host is a wildcard address (::)",
        ),
        (
            "[sip]\nrate_limit_burst = 0\n",
            ":2: sip.rate_limit_burst: must be at least 1 when sip.rate_limit_per_source is not 0",
        ),
        (
            "[media]\nbootstrap_stream_ids = [0, 1000]\n",
            ":2: media.min_application_stream_id: must be greater than every "
            "media.bootstrap_stream_ids entry (largest 1000) (got 1000)",
        ),
        (
            "[media]\nbootstrap_stream_ids = [0, 10, 0]\n",
            ":2: media.bootstrap_stream_ids: lists 0 more than once",
        ),
        ("[media]\nhost = 'media.lab'\n", ":2: media.host: must be an IP address literal"),
        ("[sip]\nhost = '300.1.1.1'\n", ":2: sip.host: must be an IP address or a host name"),
        ('[sip]\nuser_agent = "a\\r\\nX: y"\n', ":2: sip.user_agent: must not contain control"),
        ("[sip]\ntrusted_peers = []\n", ":2: sip.trusted_peers: must not be empty"),
        ("[sip]\nt4 = inf\n", ":2: sip.t4: Input should be a finite number"),
        ("[log]\nlevel = 'LOUD'\n", ":2: log.level: Input should be 'DEBUG'"),
        ("sip = 5\n", ":1: sip: Input should be a valid dictionary or instance of SipConfig"),
        ("sip.port = 'x'\n", ":1: sip.port: Input should be a valid integer"),
    ],
)
def test_validation_problems(text: str, expected: str, write_config: WriteConfig) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    [problem] = problems_of(excinfo)
    assert problem.startswith(f"{path}{expected}")


def test_cross_field_problem_points_at_the_environment_variable_that_caused_it(
    write_config: WriteConfig,
) -> None:
    path = write_config("[sip]\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={"AVATAR_MF_SIP__T1": "9"})
    [problem] = excinfo.value.problems
    assert problem == ConfigProblem(
        "sip.t2", "must be greater than sip.t1 (9.0) (got 4.0)", "env AVATAR_MF_SIP__T1", None
    )


def test_toml_syntax_error_reports_line_and_column(write_config: WriteConfig) -> None:
    path = write_config("[sip]\nport = 5060\nhost = \n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    [problem] = excinfo.value.problems
    assert problem.line == 3
    assert problem.key_path == ""
    assert str(problem) == f"{path}:3: TOML syntax error: Invalid value (column 8)"


def test_toml_syntax_error_at_end_of_file(write_config: WriteConfig) -> None:
    path = write_config('[sip]\nhost = "127.0.0.1\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    [problem] = excinfo.value.problems
    assert problem.line == 2
    assert problem.message.startswith("TOML syntax error")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(tmp_path / "nope.toml", env={})
    assert problems_of(excinfo) == [
        f"{tmp_path / 'nope.toml'}: cannot read config file: No such file or directory"
    ]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[sip]\nuser_agent = "caf\xe9"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    assert "not UTF-8" in excinfo.value.problems[0].message


def test_config_error_message_lists_every_problem(write_config: WriteConfig) -> None:
    path = write_config("[sip]\nport = 0\n[media]\nsctp_port = 0\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    assert str(excinfo.value).splitlines() == problems_of(excinfo)


def test_embedded_default_source_name() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, env={"AVATAR_MF_SIP__PORT": "0"})
    assert excinfo.value.problems[0].source == "env AVATAR_MF_SIP__PORT"
    assert EMBEDDED_DEFAULT_SOURCE.endswith("default.toml")


# --------------------------------------------------------------------------- helpers on models


def test_is_trusted() -> None:
    sip = SipConfig(trusted_peers=("10.0.0.0/8", "2001:db8::/32"))  # type: ignore[arg-type]
    assert sip.is_trusted("10.1.2.3")
    assert sip.is_trusted("::ffff:10.1.2.3")
    assert sip.is_trusted("2001:db8::5")
    assert not sip.is_trusted("192.0.2.1")
    assert not sip.is_trusted("::1")
    with pytest.raises(ValueError):
        sip.is_trusted("not-an-ip")


def test_certificate_dir_follows_storage_unless_set() -> None:
    config = AppConfig(storage=StorageConfig(path=Path("/srv/mf")))
    assert config.dtls_certificate_dir == Path("/srv/mf/dtls")
    config = AppConfig(media=MediaConfig(certificate_dir=Path("/etc/mf/dtls")))
    assert config.dtls_certificate_dir == Path("/etc/mf/dtls")


# --------------------------------------------------------------------------- dumping


@pytest.mark.parametrize(
    "config_path", [None, REPO / "configs" / "example-lab.toml"], ids=["default", "example-lab"]
)
def test_dump_toml_round_trips(config_path: Path | None, write_config: WriteConfig) -> None:
    config = load_config(config_path, env={})
    assert load_config(write_config(dump_toml(config)), env={}) == config


def test_dump_toml_round_trips_awkward_values(write_config: WriteConfig) -> None:
    config = AppConfig(
        sip=SipConfig(user_agent='avatar-mf "lab" \\ é', advertised_host="mf.example"),
        media=MediaConfig(certificate_dir=Path("/tmp/d t l s"), bootstrap_stream_ids=()),
        log=LogConfig(modules={"avatar_mf.sip": "DEBUG", "aioice": "WARNING"}),
    )
    text = dump_toml(config)
    assert load_config(write_config(text), env={}) == config


def test_dump_json() -> None:
    assert '"advertised_host": null' in dump_json(AppConfig())


def test_sctp_chunk_bounds_match_the_media_layer() -> None:
    """The media layer (aiortc) refuses chunk sizes outside these bounds at start-up."""
    sctp = pytest.importorskip("avatar_mf.media.sctp_transport")
    bounds = MediaConfig.model_json_schema()["properties"]["sctp_max_chunk"]
    assert bounds["minimum"] == sctp.MIN_USER_DATA_MAX_LENGTH
    assert bounds["maximum"] == sctp.AIORTC_USER_DATA_MAX_LENGTH == MediaConfig().sctp_max_chunk
