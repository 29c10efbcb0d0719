"""The pipeline config file: the default loads, every problem is reported at once with its file and
dotted path in file order, warnings never fail, a secret is refused wherever it stands (never
echoed), and the YAML presets equal the Python ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from acoustic_pipelines import settings
from acoustic_pipelines.acoustic.rows import (
    IDENTIFY_DEFAULT,
    IDENTIFY_TRIGGER,
    TRACK_DEFAULT,
    TRACK_TRIGGER,
    build_row,
)
from acoustic_pipelines.actions import compile_trigger
from acoustic_pipelines.config.loading import (
    MAX_MAPPINGS,
    ConfigError,
    PipelineConfig,
    load_config,
    parse_config,
)
from acoustic_pipelines.config.secrets import looks_secret
from acoustic_pipelines.connect.exports.requests import EXPORT_SIGNAL_TYPES

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "pipeline.yaml"
FILE = "test.yaml"


def _with_products_and_context(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a products array and a context, to see nested keys in the row."""
    event["properties"]["products"] = [{"sku": "A"}]
    event["context"] = {"traits": {"email": "other@example.com"}, "locale": "en-US"}
    return event


def _base() -> dict[str, Any]:
    """A valid config as data, to break one piece at a time."""
    return {
        "destinations": [
            {
                "name": "acoustic",
                "customer_prefix": "Acme_Prod_",
                "access_point_alias": "alias-s3alias",
                "mappings": [
                    {"name": "Track Calls", "trigger": TRACK_TRIGGER, "mapping": TRACK_DEFAULT},
                    {
                        "name": "Identify Calls",
                        "trigger": IDENTIFY_TRIGGER,
                        "mapping": IDENTIFY_DEFAULT,
                    },
                ],
            }
        ],
        "signals": {},
        "exports": {},
    }


def _parse(data: Any) -> PipelineConfig:
    return parse_config(yaml.safe_dump(data, sort_keys=False), file=FILE)


def _problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(data)
    return caught.value.problems


# --- the default config ----------------------------------------------------------------------


def test_default_config_loads_without_warnings() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.warnings == []
    assert config.source == str(DEFAULT_CONFIG)
    [destination] = config.destinations
    assert (destination.name, destination.customer_prefix) == ("acoustic", "DemoOrg_Prod_")
    assert (destination.access_point_alias, destination.region) == (
        "demo-access-point-alias",
        "us-east-1",
    )
    assert [m.name for m in destination.mappings] == ["Track Calls", "Identify Calls"]
    assert [m.trigger.fql for m in destination.mappings] == [TRACK_TRIGGER, IDENTIFY_TRIGGER]
    assert all(m.enabled for m in destination.mappings)
    assert [d.name for d in config.exports.definitions] == ["behavior", "marketing"]
    behavior, marketing = config.exports.definitions
    assert len(behavior.signal_types) == 11 and len(marketing.signal_types) == 17
    assert set(behavior.signal_types) | set(marketing.signal_types) == set(EXPORT_SIGNAL_TYPES)


def test_default_yaml_mappings_equal_the_python_presets() -> None:
    """config/pipeline.yaml and acoustic.py must never drift (key order included)."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    track, identify = raw["destinations"][0]["mappings"]
    assert json.dumps(track["mapping"]) == json.dumps(TRACK_DEFAULT)
    assert json.dumps(identify["mapping"]) == json.dumps(IDENTIFY_DEFAULT)
    assert (track["trigger"], identify["trigger"]) == (TRACK_TRIGGER, IDENTIFY_TRIGGER)
    loaded = load_config(DEFAULT_CONFIG).destinations[0].mappings
    assert loaded[0].mapping.raw == TRACK_DEFAULT and loaded[1].mapping.raw == IDENTIFY_DEFAULT


def test_default_config_delivers_a_track_event_out_of_the_box(track_event: dict[str, Any]) -> None:
    track, identify = load_config(DEFAULT_CONFIG).destinations[0].mappings
    event = _with_products_and_context(track_event)
    assert track.matches(event) and not identify.matches(event)
    row = build_row(track.apply(event))
    assert row["uniqueRecipient"] == "ann@example.com"
    assert row["eventSource"] == "track Event"
    assert row["products.0.sku"] == "A" and row["locale"] == "en-US"


def test_rules_are_the_enabled_mappings_with_compiled_callables(
    track_event: dict[str, Any],
) -> None:
    data = _base()
    data["destinations"][0]["mappings"][1]["enabled"] = False
    destination = _parse(data).destinations[0]
    [rule] = destination.rules
    assert (rule.destination, rule.name, rule.fql) == ("acoustic", "Track Calls", TRACK_TRIGGER)
    assert rule.matches(track_event) is True
    assert rule.apply(track_event) == destination.mappings[0].apply(track_event)


def test_config_path_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(settings.CONFIG_ENV, raising=False)
    monkeypatch.chdir(REPO_ROOT)
    assert settings.config_path() == Path("config/pipeline.yaml")
    monkeypatch.chdir(tmp_path)  # elsewhere: the repository's file
    assert settings.config_path() == DEFAULT_CONFIG
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(_base()))
    monkeypatch.setenv(settings.CONFIG_ENV, str(other))
    assert settings.config_path() == other
    assert load_config().source == str(other)


def test_model_dump_round_trips_to_an_equal_config() -> None:
    data = _base()
    data["destinations"][0]["mappings"][1]["trigger"] = {
        "match": "any",
        "conditions": [{"field": "type", "operator": "is", "value": "identify"}],
    }
    config = _parse(data)
    dumped = config.model_dump()
    assert dumped["destinations"][0]["mappings"][0]["trigger"] == TRACK_TRIGGER
    assert PipelineConfig.model_validate(dumped) == config


def test_structured_trigger_compiles_to_segments_fql(track_event: dict[str, Any]) -> None:
    data = _base()
    data["destinations"][0]["mappings"][0]["trigger"] = {
        "match": "all",
        "conditions": [
            {"field": "event", "operator": "is", "value": "Order Completed"},
            {"field": "properties.total", "operator": ">", "value": 25},
        ],
    }
    mapping = _parse(data).destinations[0].mappings[0]
    assert mapping.trigger.is_structured
    assert mapping.trigger.fql == 'event = "Order Completed" and properties.total > 25'
    assert mapping.matches(track_event) is True
    assert mapping.matches({**track_event, "properties": {"total": 20}}) is False
    assert compile_trigger(mapping.trigger.fql)(track_event) is True


def test_yaml_dates_stay_text() -> None:
    text = DEFAULT_CONFIG.read_text().replace(
        'timestamp: {"@path": "$.timestamp"}\n          # Added',
        "timestamp: 2026-11-20\n          # Added",
        1,
    )
    mapping = parse_config(text, file=FILE).destinations[0].mappings[0]
    assert mapping.mapping.raw["timestamp"] == "2026-11-20"


def test_select_columns_keeps_headers_and_allow_listed_keys(track_event: dict[str, Any]) -> None:
    data = _base()
    data["destinations"][0]["columns"] = ["total", "products.0.sku"]
    destination = _parse(data).destinations[0]
    row = build_row(destination.mappings[0].apply(_with_products_and_context(track_event)))
    assert list(destination.select_columns(row)) == [
        "uniqueRecipient",
        "eventSource",
        "timestamp",
        "total",
        "products.0.sku",
    ]


# --- errors, one kind at a time, each with its dotted path -----------------------------------


def _set(path: str, value: Any) -> dict[str, Any]:
    """The base config with the value at a dotted path replaced (or added)."""
    data = copy.deepcopy(_base())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def _without(path: str) -> dict[str, Any]:
    data = copy.deepcopy(_base())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return data


D0 = "destinations.0"
M0 = "destinations.0.mappings.0"

ERROR_CASES = [
    (_set(f"{D0}.name", "Acoustic EU"), f"{D0}.name", "lower-case letters, digits and `_`"),
    (_set(f"{D0}.name", "eu-1"), f"{D0}.name", "'eu-1'"),
    (_set(f"{D0}.customer_prefix", ""), f"{D0}.customer_prefix", "MISSING_CUSTOMER_PREFIX"),
    (
        _set(f"{D0}.customer_prefix", "Acme"),
        f"{D0}.customer_prefix",
        "INVALID_CUSTOMER_PREFIX: `customer_prefix` (Customer Prefix) is 'Acme'; expected it to end "
        'with an underscore "_"',
    ),
    (
        _set(f"{D0}.customer_prefix", "customer_org_"),
        f"{D0}.customer_prefix",
        "INVALID_CUSTOMER_PREFIX: `customer_prefix` (Customer Prefix) is 'customer_org_', Segment's "
        "unedited default",
    ),
    (
        _set(f"{D0}.access_point_alias", " "),
        f"{D0}.access_point_alias",
        "MISSING_S3_BUCKET_ACCESS_POINT",
    ),
    (_set(f"{D0}.region", ""), f"{D0}.region", "MISSING_S3_REGION"),
    (_set(f"{D0}.region", 1), f"{D0}.region", "Input should be a valid string; got 1"),
    (_without(f"{D0}.customer_prefix"), f"{D0}.customer_prefix", "is required and missing"),
    (_set(f"{D0}.columns", []), f"{D0}.columns", "empty allow-list"),
    (_set(f"{D0}.columns", ["a", "b", "a"]), f"{D0}.columns.2", "column 'a' is listed twice"),
    (_set(f"{D0}.columns", "a"), f"{D0}.columns", "Input should be a valid list; got 'a'"),
    (_set(f"{D0}.mappings", {}), f"{D0}.mappings", "Input should be a valid list"),
    (_set(f"{D0}.colour", "blue"), f"{D0}.colour", "unknown key `colour`; expected one of: name,"),
    (_set(f"{M0}.name", "  "), f"{M0}.name", "a mapping needs a name"),
    (_set(f"{M0}.enabled", "yes please"), f"{M0}.enabled", "valid boolean; got 'yes please'"),
    (_without(f"{M0}.trigger"), f"{M0}.trigger", "`trigger` is required and missing"),
    (_without(f"{M0}.mapping"), f"{M0}.mapping", "`mapping` is required and missing"),
    (
        _set(f"{M0}.trigger", 'type = "track" and ('),
        f"{M0}.trigger",
        "is not valid FQL: `(` is never closed (or parentheses are nested) at position 19",
    ),
    (_set(f"{M0}.trigger", ""), f"{M0}.trigger", "not valid FQL"),
    (_set(f"{M0}.trigger", 5), f"{M0}.trigger", "a trigger is FQL text such as"),
    (_set(f"{M0}.trigger", {"match": "all"}), f"{M0}.trigger", "needs `conditions`"),
    (_set(f"{M0}.trigger", {"text": 'type = "x"'}), f"{M0}.trigger", "plain string"),
    (
        _set(
            f"{M0}.trigger",
            {"match": "ALL", "conditions": [{"field": "type", "operator": "is", "value": "x"}]},
        ),
        f"{M0}.trigger.match",
        "Input should be 'all' or 'any'; got 'ALL'",
    ),
    (
        _set(f"{M0}.trigger", {"conditions": []}),
        f"{M0}.trigger.conditions",
        "needs at least one condition",
    ),
    (
        _set(
            f"{M0}.trigger",
            {"conditions": [{"field": "anonymousId", "operator": "is", "value": "x"}]},
        ),
        f"{M0}.trigger.conditions.0",
        "the field must be type, event, name, userId or a dot path",
    ),
    (
        _set(
            f"{M0}.trigger",
            {"conditions": [{"field": "type", "operator": "contains", "value": "x"}]},
        ),
        f"{M0}.trigger.conditions.0",
        "the operator does not apply to `type`",
    ),
    (
        _set(
            f"{M0}.trigger",
            {"conditions": [{"field": "properties.total", "operator": ">", "value": "lots"}]},
        ),
        f"{M0}.trigger.conditions.0",
        "a finite number is needed",
    ),
    (
        _set(f"{M0}.trigger", {"conditions": [{"field": "event", "operator": "is"}, {"op": "is"}]}),
        f"{M0}.trigger.conditions.1.op",
        "unknown key `op`; expected one of: field, operator, value",
    ),
    (
        _set(f"{M0}.mapping", {"uniqueRecipientId": {"@path": 3}}),
        f"{M0}.mapping",
        "/uniqueRecipientId/@path should be a string or a mapping directive but it is a number.",
    ),
    (
        _set(f"{M0}.mapping", {"x": {"@bogus": 1}}),
        f"{M0}.mapping",
        "/x has an invalid directive: @bogus.",
    ),
    (
        _set(f"{M0}.mapping", {"x": {"@path": "$.a", "@template": "b"}}),
        f"{M0}.mapping",
        "/x should only have one @-prefixed key but it has 2 keys.",
    ),
    (_set(f"{M0}.mapping", {1: "one"}), f"{M0}.mapping", "the key 1 is int; JSON keys are text"),
    (
        _set(f"{M0}.mapping", {"a": [float("nan")]}),
        f"{M0}.mapping",
        "/a/0: nan is not a JSON number",
    ),
    (_set("signals", ["x"]), "signals", "Input should be a valid dictionary"),
    (
        _set("colour", "blue"),
        "colour",
        "unknown key `colour`; expected one of: destinations, signals, exports",
    ),
    (_without("destinations"), "destinations", "`destinations` is required and missing"),
]


@pytest.mark.parametrize(
    ("data", "path", "message"), ERROR_CASES, ids=[c[1] + ":" + c[2][:30] for c in ERROR_CASES]
)
def test_each_error_names_the_file_and_dotted_path(data: Any, path: str, message: str) -> None:
    problems = _problems(data)
    prefix = f"{FILE}: {path}: "
    assert any(p.startswith(prefix) and message in p for p in problems), problems


def test_duplicate_names_are_refused_with_the_later_path() -> None:
    data = _base()
    data["destinations"].append(copy.deepcopy(data["destinations"][0]))
    data["destinations"][0]["mappings"][1]["name"] = "Track Calls"
    assert _problems(data) == [
        f"{FILE}: destinations.0.mappings.1.name: mapping name 'Track Calls' is already used by mapping 0",
        f"{FILE}: destinations.1.name: destination name 'acoustic' is already used by destination 0",
    ]


def test_more_than_50_mappings_are_refused() -> None:
    data = _base()
    mapping = data["destinations"][0]["mappings"][0]
    data["destinations"][0]["mappings"] = [
        {**mapping, "name": f"m{i}"} for i in range(MAX_MAPPINGS + 1)
    ]
    assert _problems(data) == [
        f"{FILE}: destinations.0.mappings: 51 mappings; a destination holds at most 50 "
        "(Segment's limit): split them over several destinations"
    ]
    data["destinations"][0]["mappings"].pop()
    assert len(_parse(data).destinations[0].mappings) == MAX_MAPPINGS


def test_cross_checks_still_apply_when_the_model_is_built_directly() -> None:
    data = _base()
    data["destinations"][0]["mappings"][1]["name"] = "Track Calls"
    with pytest.raises(ValueError, match="already used by mapping 0"):
        PipelineConfig.model_validate(data)


# --- secrets: refused anywhere in the file, never echoed -------------------------------------

SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize("key", ["s3_access_key", "s3_secret", "aws_secret_access_key"])
def test_a_destination_secret_names_the_s3_environment_variables(key: str) -> None:
    [problem] = _problems(_set(f"{D0}.{key}", SECRET))
    assert problem == (
        f"{FILE}: {D0}.{key}: `{key}` looks like a secret, and secrets never go in the config "
        "file: remove it and set the environment variables ACOUSTIC_S3_ACCESS_KEY and "
        "ACOUSTIC_S3_SECRET"
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("signals.app_key", SECRET),
        ("exports.definitions", [{"name": "o", "signal_types": ["order"], "appKeyValue": SECRET}]),
        ("exports.password", SECRET),
        ("exports.private_key_path", "/home/me/.ssh/id_ed25519"),
        ("signals.api_key", 12345),
        ("signals.tokens", [SECRET]),
        ("api_key", SECRET),
        (f"{M0}.mapping", {**TRACK_DEFAULT, "key_value_pairs": {"x-api-key": SECRET}}),
    ],
)
def test_a_secret_anywhere_is_refused_with_its_dotted_path(path: str, value: Any) -> None:
    problems = _problems(_set(path, value))
    assert len(problems) == 1, problems
    [problem] = problems
    secret_path = problem.split(": ")[1]
    assert secret_path.startswith(path + ".") or secret_path == path
    assert "looks like a secret, and secrets never go in the config file" in problem
    assert SECRET not in problem and "12345" not in problem and "id_ed25519" not in problem


def test_a_secret_outside_destinations_names_an_environment_variable_instead() -> None:
    [problem] = _problems(_set("exports.app_key", SECRET))
    assert problem == (
        f"{FILE}: exports.app_key: `app_key` looks like a secret, and secrets never go in "
        "the config file: set an environment variable and name it here instead, e.g. "
        "`app_key_env: ACOUSTIC_APP_KEY`"
    )


def test_a_secret_in_a_mapping_says_to_take_it_from_the_event() -> None:
    data = _set(f"{M0}.mapping", {**TRACK_DEFAULT, "properties": {"password": SECRET}})
    [problem] = _problems(data)
    assert problem.startswith(f"{FILE}: {M0}.mapping.properties.password: `password` looks like")
    assert problem.endswith(
        'take it from the event ({"@path": "$.properties.password"}) or leave it out'
    )


def test_keys_naming_an_environment_variable_and_non_literals_are_allowed() -> None:
    data = _set("signals", {"app_key_env": "ACOUSTIC_APP_KEY", "tier": "pro"})
    data["destinations"][0]["mappings"][0]["mapping"] = {
        **TRACK_DEFAULT,
        "key_value_pairs": {
            "api_key": {"@path": "$.context.api_key"},  # data from the event
            "credentials": {"user": "me", "password_env": "SFTP_PASSWORD"},
            "api_key_required": True,  # a boolean is no secret
            "secret": None,
        },
    }
    config = _parse(data)
    assert (config.signals.app_key_env, config.signals.tier) == ("ACOUSTIC_APP_KEY", "pro")


def test_an_environment_variable_key_must_hold_a_variable_name() -> None:
    [problem] = _problems(_set("signals.appKeyEnv", "sk live " + SECRET))
    assert problem.startswith(
        f"{FILE}: signals.appKeyEnv: `appKeyEnv` names the environment variable that holds a "
        "secret; expected a variable name such as ACOUSTIC_APP_KEY"
    )
    assert SECRET not in problem


def test_secrets_are_refused_when_the_model_is_built_directly() -> None:
    data = _set(f"{M0}.mapping", {**TRACK_DEFAULT, "key_value_pairs": {"password": SECRET}})
    with pytest.raises(
        ValueError, match=rf"{M0}\.mapping\.key_value_pairs\.password: `password` looks like"
    ):
        PipelineConfig.model_validate(data)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("s3_secret", True),
        ("apiKey", True),
        ("APIKey", True),
        ("x-api-key", True),
        ("app_key_value", True),
        ("aws_access_key_id", True),
        ("sftp_password", True),
        ("refresh_token", True),
        ("private_key_path", True),
        ("customer_prefix", False),
        ("access_point_alias", False),
        ("host_key", False),
        ("keyboard", False),
        ("name", False),
    ],
)
def test_which_keys_look_secret(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    data = _base()
    destination = data["destinations"][0]
    destination["customer_prefix"] = "customer_org_"
    destination["s3_secret"] = "x"
    destination["mappings"][0]["trigger"] = 'type = "track" and ('
    destination["mappings"][0]["mapping"] = {"a": {"@path": 3}}
    destination["mappings"][1]["name"] = "Track Calls"
    destination["mappings"][1]["trigger"] = {
        "conditions": [{"field": "nope", "operator": "is", "value": "x"}]
    }
    data["destinations"].append({"name": "BAD", "customer_prefix": "x", "access_point_alias": ""})
    problems = _problems(data)
    assert [p.split(": ")[1] for p in problems] == [
        "destinations.0.customer_prefix",
        "destinations.0.mappings.0.trigger",
        "destinations.0.mappings.0.mapping",
        "destinations.0.mappings.1.name",
        "destinations.0.mappings.1.trigger.conditions.0",
        "destinations.0.s3_secret",  # written after `mappings`
        "destinations.1.name",
        "destinations.1.customer_prefix",
        "destinations.1.access_point_alias",
    ]
    assert all(p.startswith(f"{FILE}: ") for p in problems)


def test_config_error_text_lists_every_problem() -> None:
    data = _set(f"{D0}.region", "")
    data["destinations"][0]["name"] = "A"
    with pytest.raises(ConfigError) as caught:
        _parse(data)
    assert str(caught.value).splitlines() == caught.value.problems
    assert caught.value.file == FILE


# --- the file itself ---------------------------------------------------------------------------


def test_yaml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("destinations:\n  - name: [unclosed\n", file=FILE)
    [problem] = caught.value.problems
    assert problem.startswith(f"{FILE}: line 3, column 1: not valid YAML:")


def test_duplicate_yaml_keys_are_refused() -> None:
    text = DEFAULT_CONFIG.read_text().replace(
        "    region: us-east-1\n", "    region: us-east-1\n    region: eu-west-1\n", 1
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file=FILE)
    [problem] = caught.value.problems
    assert "the key 'region' is written twice (first on line" in problem
    assert problem.startswith(f"{FILE}: line ")


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- a\n", "list ['a']")])
def test_the_top_level_must_be_a_mapping(text: str, got: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file=FILE)
    assert caught.value.problems == [
        f"{FILE}: (top level): expected a mapping with a `destinations:` list; got {got}"
    ]


def test_a_missing_file_names_the_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: no such file (pass a config file or set "
        "ACOUSTIC_PIPELINES_CONFIG; the default is config/pipeline.yaml)"
    ]


# --- warnings ----------------------------------------------------------------------------------


def test_lint_warnings_carry_the_path_and_are_not_fatal() -> None:
    data = _set(f"{M0}.trigger", 'type = \'track\' or event = "A" and userId = "u"')
    config = _parse(data)
    trigger_warnings = [w for w in config.warnings if w.startswith(f"{FILE}: {M0}.trigger: ")]
    assert any("single-quoted 'track'" in w for w in trigger_warnings)
    assert any("`and` and `or` mixed without parentheses" in w for w in trigger_warnings)


def test_mapping_warnings_for_rows_that_cannot_be_built() -> None:
    data = _set(f"{M0}.mapping", {"type": {"@path": "$.type"}, "colour": "red"})
    warnings = _parse(data).warnings
    prefix = f"{FILE}: {M0}.mapping: "
    assert f"{prefix}`colour` is not a field of Acoustic's Send Events action" in "\n".join(
        warnings
    )
    assert any(
        w.startswith(prefix) and "INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID" in w for w in warnings
    )
    assert any(w.startswith(prefix) and "INVALID_NO_DATA_MAPPED" in w for w in warnings)


def test_segment_presets_alone_warn_about_no_data_mapped() -> None:
    from acoustic_pipelines.acoustic.rows import TRACK_PRESET

    warnings = _parse(_set(f"{M0}.mapping", TRACK_PRESET)).warnings
    assert warnings == [
        f"{FILE}: {M0}.mapping: none of key_value_pairs, array_data, traits, properties, context is "
        "mapped: every event this mapping matches is rejected with INVALID_NO_DATA_MAPPED "
        "(Segment's presets alone do this)"
    ]


def test_a_destination_without_enabled_mappings_warns() -> None:
    data = _base()
    for mapping in data["destinations"][0]["mappings"]:
        mapping["enabled"] = False
    assert _parse(data).warnings == [
        f'{FILE}: destinations.0.mappings: no enabled mapping: every event is counted as "no '
        'matching mapping"'
    ]


def test_warnings_of_valid_parts_come_with_errors() -> None:
    data = _set(f"{M0}.trigger", 'type = "track" AND event = "x"')
    data["destinations"][0]["region"] = ""
    with pytest.raises(ConfigError) as caught:
        _parse(data)
    assert [p.split(": ")[1] for p in caught.value.problems] == [f"{D0}.region"]
    assert any("`AND` is not a keyword" in w for w in caught.value.warnings)
