"""The stage tables ``[pipeline.<kind>]``: name and options, from the file and the environment."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from avatar_mf.config import (
    STAGE_KINDS,
    AnimationDataSettings,
    AppConfig,
    ConfigError,
    PipelineConfig,
    StageSettings,
    dump_toml,
    iter_settings,
    load_config,
)

WriteConfig = Callable[..., Path]

BRIEF_EXAMPLE = """\
[pipeline]
rate = 30.0
workers = 2
max_pending = 64
[pipeline.base_avatar]
name = "procedural"
[pipeline.base_avatar.options]
resolution = "low"
[pipeline.animation_data]
name = "text"
[pipeline.animation]
name = "receiver"
[pipeline.scene]
name = "gltf"
[pipeline.converter]
name = ""
"""


def problems(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env=env or {})
    return [str(p) for p in excinfo.value.problems]


def test_defaults() -> None:
    pipeline = load_config(None, env={}).pipeline
    names = {kind: getattr(pipeline, kind).name for kind in STAGE_KINDS}
    assert names == {
        "base_avatar": "procedural",
        "animation_data": "text",
        "animation": "receiver",
        "scene": "gltf",
        "converter": "standard",
    }
    assert all(getattr(pipeline, kind).options == {} for kind in STAGE_KINDS)


def test_stage_tables_load(write_config: WriteConfig) -> None:
    pipeline = load_config(write_config(BRIEF_EXAMPLE), env={}).pipeline
    assert pipeline.base_avatar == StageSettings(name="procedural", options={"resolution": "low"})
    assert pipeline.converter == StageSettings(name="", options={})
    assert pipeline.scene.name == "gltf"
    assert (pipeline.rate, pipeline.workers, pipeline.max_pending) == (30.0, 2, 64)


def test_options_hold_any_toml_values(write_config: WriteConfig) -> None:
    path = write_config(
        "[pipeline.animation_data]\n"
        'name = "mine"\n'
        "[pipeline.animation_data.options]\n"
        'voice = "en-us"\n'
        "rate = 1.5\n"
        "huge = inf\n"
        "dense = true\n"
        "since = 2024-05-01T10:00:00Z\n"
        "translation = [0.0, 1.6, 0.1]\n"
        "nested = { deeper = { list = [1, 'two'] } }\n"
        "[[pipeline.animation_data.options.voices]]\n"
        'id = "a"\n'
    )
    options = load_config(path, env={}).pipeline.animation_data.options
    assert options == {
        "voice": "en-us",
        "rate": 1.5,
        "huge": float("inf"),
        "dense": True,
        "since": datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC),
        "translation": [0.0, 1.6, 0.1],
        "nested": {"deeper": {"list": [1, "two"]}},
        "voices": [{"id": "a"}],
    }


def test_a_table_without_name_keeps_the_default_implementation(write_config: WriteConfig) -> None:
    path = write_config("[pipeline.animation_data.options]\nvoice = 'en-us'\n")
    stage = load_config(path, env={}).pipeline.animation_data
    assert stage == AnimationDataSettings(name="text", options={"voice": "en-us"})


def test_empty_name_turns_a_function_off_but_not_the_scene(write_config: WriteConfig) -> None:
    path = write_config("[pipeline.animation_data]\nname = ''\n[pipeline.animation]\nname = ''\n")
    pipeline = load_config(path, env={}).pipeline
    assert (pipeline.animation_data.name, pipeline.animation.name) == ("", "")
    path = write_config("[pipeline]\nrate = 25.0\n\n[pipeline.scene]\nname = ''\n")
    assert problems(path) == [
        f'{path}:5: pipeline.scene.name: must name a scene stage: the scene cannot be off (got "")'
    ]


def test_bad_types_and_unknown_keys_are_problems_with_lines(write_config: WriteConfig) -> None:
    path = write_config(
        "[pipeline.base_avatar]\n"  # 1
        "name = 5\n"  # 2
        "[pipeline.animation]\n"  # 3
        "nmae = 'receiver'\n"  # 4
        "[pipeline.scene]\n"  # 5
        "options = 'room=1'\n"  # 6
        "[pipeline.converter]\n"  # 7
        "name = 'x'\n"  # 8
        "opts = {}\n"  # 9
        "[pipeline.transcoder]\n"  # 10
        "name = 'x'\n"  # 11
    )
    assert problems(path) == [
        f"{path}:2: pipeline.base_avatar.name: Input should be a valid string (got 5)",
        f"{path}:4: pipeline.animation.nmae: unknown setting (did you mean "
        "pipeline.animation.name?)",
        f"{path}:6: pipeline.scene.options: Input should be a valid dictionary (got \"room=1\")",
        f"{path}:9: pipeline.converter.opts: unknown setting (did you mean "
        "pipeline.converter.options?)",
        f"{path}:10: pipeline.transcoder: unknown setting",
    ]


@pytest.mark.parametrize("kind", ["animation_data", "animation", "scene", "base_avatar"])
def test_the_old_flat_form_says_what_to_write(kind: str, write_config: WriteConfig) -> None:
    path = write_config(f'[pipeline]\nrate = 30.0\n{kind} = "mine"\n')
    assert problems(path) == [
        f'{path}:3: pipeline.{kind}: now a table: write [pipeline.{kind}] name = "mine"'
    ]


def test_the_old_flat_form_with_an_empty_name(write_config: WriteConfig) -> None:
    path = write_config('[pipeline]\nanimation_data = ""\n')
    assert problems(path) == [
        f'{path}:2: pipeline.animation_data: now a table: write [pipeline.animation_data] name = ""'
    ]


# --------------------------------------------------------------------------- dumping


def test_dump_round_trips_stage_tables(write_config: WriteConfig) -> None:
    config = load_config(write_config(BRIEF_EXAMPLE), env={})
    assert load_config(write_config(dump_toml(config), "dumped.toml"), env={}) == config


def test_dump_keeps_the_toml_types_of_options(write_config: WriteConfig) -> None:
    options = {
        "when": datetime.datetime(2024, 5, 1, 10, 30, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 5, 1),
        "at": datetime.time(7, 5),
        "weights": [0.5, 1.5],
        'odd "key"': {"a.b": 1, "nested": {"x": True}},
        "tables": [{"id": "a"}, {"id": "b"}],
    }
    config = AppConfig(
        pipeline=PipelineConfig(
            animation_data=StageSettings(name="mine", options=options),
            converter=StageSettings(name="glb", options={"format": "usdz"}),
        )
    )
    text = dump_toml(config)
    back = load_config(write_config(text), env={})
    assert back == config
    assert back.pipeline.animation_data.options == options


# --------------------------------------------------------------------------- environment


def test_every_stage_key_has_a_variable() -> None:
    names = {info.env_var for info in iter_settings() if info.section == "pipeline"}
    for kind in STAGE_KINDS:
        assert f"AVATAR_MF_PIPELINE__{kind.upper()}__NAME" in names
        assert f"AVATAR_MF_PIPELINE__{kind.upper()}__OPTIONS" in names


@pytest.mark.parametrize(
    "raw",
    [
        '{"voice": "en-us", "words_per_minute": 150}',
        '{ voice = "en-us", words_per_minute = 150 }',
    ],
)
def test_options_from_the_environment(raw: str, write_config: WriteConfig) -> None:
    path = write_config("[pipeline.animation_data]\nname = 'text'\noptions = { voice = 'de' }\n")
    env = {"AVATAR_MF_PIPELINE__ANIMATION_DATA__OPTIONS": raw}
    stage = load_config(path, env=env).pipeline.animation_data
    options = {"voice": "en-us", "words_per_minute": 150}
    assert stage == AnimationDataSettings(name="text", options=options)


def test_options_as_name_value_pairs_are_strings() -> None:
    env = {"AVATAR_MF_PIPELINE__BASE_AVATAR__OPTIONS": "resolution=low"}
    assert load_config(None, env=env).pipeline.base_avatar.options == {"resolution": "low"}


def test_name_from_the_environment_wins_and_an_empty_one_turns_off(
    write_config: WriteConfig,
) -> None:
    path = write_config("[pipeline.animation_data]\nname = 'text'\noptions = { voice = 'de' }\n")
    env = {"AVATAR_MF_PIPELINE__ANIMATION_DATA__NAME": ""}
    stage = load_config(path, env=env).pipeline.animation_data
    assert stage == AnimationDataSettings(name="", options={"voice": "de"})
    env = {"AVATAR_MF_PIPELINE__SCENE__NAME": "mine", "AVATAR_MF_PIPELINE__CONVERTER__NAME": "x"}
    pipeline = load_config(path, env=env).pipeline
    assert (pipeline.scene.name, pipeline.converter.name) == ("mine", "x")


def test_options_alone_from_the_environment_keep_the_default_name(
    write_config: WriteConfig,
) -> None:
    env = {"AVATAR_MF_PIPELINE__SCENE__OPTIONS": json.dumps({"max_participants": 8})}
    stage = load_config(write_config("[sip]\n"), env=env).pipeline.scene
    assert (stage.name, stage.options) == ("gltf", {"max_participants": 8})


def test_environment_problems_name_the_variable() -> None:
    env = {
        "AVATAR_MF_PIPELINE__SCENE__NAME": "",
        "AVATAR_MF_PIPELINE__ANIMATION__OPTIONS": "[1, 2]",
    }
    assert problems(None, env) == [
        "env AVATAR_MF_PIPELINE__ANIMATION__OPTIONS: pipeline.animation.options: expected "
        'name=VALUE pairs, a JSON object or a TOML inline table (got "[1, 2]")',
        "env AVATAR_MF_PIPELINE__SCENE__NAME: pipeline.scene.name: must name a scene stage: "
        'the scene cannot be off (got "")',
    ]


@pytest.mark.parametrize(
    ("name", "key_path", "hint"),
    [
        # The old flat variable: the new one is suggested.
        ("AVATAR_MF_PIPELINE__ANIMATION_DATA", "pipeline.animation_data", "__NAME"),
        ("AVATAR_MF_PIPELINE__SCENE__NAM", "pipeline.scene.nam", "AVATAR_MF_PIPELINE__SCENE__NAME"),
        ("AVATAR_MF_PIPELINE__SCENE__OPTIONS__ROOM", "", None),
        ("AVATAR_MF_PIPELINE__RATE__X", "", None),
    ],
)
def test_unknown_stage_variables(name: str, key_path: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, env={name: "x"})
    [problem] = excinfo.value.problems
    assert (problem.source, problem.key_path, problem.line) == (f"env {name}", key_path, None)
    assert problem.message.startswith("unknown variable")
    if hint:
        assert "did you mean AVATAR_MF_PIPELINE__" in problem.message
        assert f"{hint}?)" in problem.message


# ------------------------------------------------------ several animation-data stages

LIST_FORM = """\
[pipeline.animation_data]
names = ["text", "voice", "camera"]
[pipeline.animation_data.options.text]
voice = "en-us"
[pipeline.animation_data.options.camera]
workers = 2
max_rate = 15.0
"""


def test_the_list_form_names_several_stages_each_with_its_options(
    write_config: WriteConfig,
) -> None:
    stage = load_config(write_config(LIST_FORM), env={}).pipeline.animation_data
    assert stage.name == ""  # the default name is not added to a list
    assert stage.entries() == (
        ("text", {"voice": "en-us"}),
        ("voice", {}),
        ("camera", {"workers": 2, "max_rate": 15.0}),
    )
    single = load_config(None, env={}).pipeline.animation_data
    assert single.entries() == (("text", {}),)
    off = load_config(None, env={"AVATAR_MF_PIPELINE__ANIMATION_DATA__NAME": ""})
    assert off.pipeline.animation_data.entries() == ()


def test_the_list_form_from_the_environment_over_the_default_file() -> None:
    env = {"AVATAR_MF_PIPELINE__ANIMATION_DATA__NAMES": '["text", "voice"]'}
    stage = load_config(None, env=env).pipeline.animation_data
    assert [name for name, _ in stage.entries()] == ["text", "voice"]


def test_list_form_mistakes_are_problems_naming_the_setting(write_config: WriteConfig) -> None:
    cases = {
        "name = 'voice'\nnames = ['text', 'camera']\n": (
            "names replaces name, so name must be empty or one of names (name = \"voice\")"
        ),
        "names = ['text', 'voice', 'text']\n": "lists text more than once",
        "names = ['text', '']\n": "lists an empty stage name",
        "names = ['text']\noptions = { workers = 2 }\n": (
            "with names, options holds one table per listed stage: options.workers names no "
            "stage of names"
        ),
        "names = ['text', 'voice']\noptions = { voice = 3 }\n": (
            "with names, options.voice must be a table of that stage's options"
        ),
    }
    for body, message in cases.items():
        path = write_config("[pipeline.animation_data]\n" + body)
        (problem,) = problems(path)
        assert problem.startswith(f"{path}:") and "pipeline.animation_data.names: " in problem
        assert message in problem, problem


def test_the_list_form_dumps_and_loads_back(write_config: WriteConfig) -> None:
    config = load_config(write_config(LIST_FORM), env={})
    assert load_config(write_config(dump_toml(config), "dumped.toml"), env={}) == config


def test_the_lab_example_offers_text_voice_and_camera() -> None:
    repo = Path(__file__).resolve().parents[2]
    stage = load_config(repo / "configs" / "example-lab.toml", env={}).pipeline.animation_data
    assert [name for name, _ in stage.entries()] == ["text", "voice", "camera"]
