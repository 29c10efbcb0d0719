"""The `exports:` section: export definitions and the daily quota share are checked when the file
loads; each problem names its dotted path and the value received."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from acoustic_pipelines.config.exports import ExportEstimate, ExportsConfig
from acoustic_pipelines.config.loading import ConfigError, load_config, parse_config
from acoustic_pipelines.connect.exports.quota import DailyLimits, Usage
from acoustic_pipelines.connect.exports.requests import (
    BEHAVIOR_SIGNAL_TYPES,
    EXPORT_SIGNAL_TYPES,
    MARKETING_SIGNAL_TYPES,
)

FILE = "exports.yaml"
DESTINATION = {
    "name": "acoustic",
    "customer_prefix": "Acme_Prod_",
    "access_point_alias": "alias-s3alias",
    "mappings": [],
}


def definition(name: str = "behavior", **extra: Any) -> dict[str, Any]:
    return {"name": name, "signal_types": ["order", "pageView"], **extra}


def parse(exports: dict[str, Any]) -> ExportsConfig:
    text = yaml.safe_dump({"destinations": [DESTINATION], "exports": exports}, sort_keys=False)
    return parse_config(text, file=FILE).exports


def problems(exports: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(exports)
    return caught.value.problems


def test_the_default_config_exports_behavior_and_marketing_signals() -> None:
    exports = load_config().exports
    behavior, marketing = exports.definitions
    assert (behavior.name, len(behavior.signal_types)) == ("behavior", 11)
    assert (marketing.name, len(marketing.signal_types)) == ("marketing", 17)
    assert set(behavior.signal_types) == set(BEHAVIOR_SIGNAL_TYPES)
    assert set(marketing.signal_types) == set(MARKETING_SIGNAL_TYPES)
    assert exports.enabled_definitions == [behavior, marketing]
    for shipped in (behavior, marketing):
        assert shipped.folder.startswith("Export/Signals/")
    # the shipped quota share leaves room for jobs run outside the pipeline
    assert exports.limits.daily_limits() == DailyLimits()
    reserve = exports.reserve.usage()
    assert 0 < reserve.jobs < DailyLimits().jobs
    assert exports.max_days_per_job == 31


def test_an_empty_section_takes_the_documented_defaults() -> None:
    exports = parse({})
    assert exports.definitions == [] and exports.enabled_definitions == []
    assert exports.job_name_prefix == "acoustic-pipelines"
    assert exports.limits.daily_limits() == DailyLimits(jobs=20, bytes=10**9, rows=2_000_000)
    assert exports.reserve.usage() == Usage()
    assert exports.max_days_per_job is None
    assert exports.estimate == ExportEstimate(rows_per_day=10_000, bytes_per_row=300)


def test_a_full_section_loads_as_written() -> None:
    exports = parse(
        {
            "job_name_prefix": "Acme_exports-1",
            "reserve": {"jobs": 2, "rows": 100_000, "bytes": 50_000_000},
            "limits": {"jobs": 10, "rows": 1_000_000, "bytes": 500_000_000},
            "max_days_per_job": 7,
            "collect_timeout_seconds": 60,
            "estimate": {"rows_per_day": 50, "bytes_per_row": 9},
            "definitions": [
                definition(
                    folder="Export/Signals/Team A/",
                    naming_prefix="acme - signals_",
                    notify=["data@example.com"],
                    estimate={"rows_per_day": 5},
                ),
                definition("marketing", enabled=False, signal_types=list(MARKETING_SIGNAL_TYPES)),
            ],
        }
    )
    behavior, marketing = exports.definitions
    assert behavior.folder == "Export/Signals/Team A"  # the trailing / is dropped
    assert (behavior.naming_prefix, behavior.notify) == ("acme - signals_", ["data@example.com"])
    assert exports.enabled_definitions == [behavior]
    assert exports.estimate_for(behavior) == ExportEstimate(rows_per_day=5, bytes_per_row=300)
    assert exports.estimate_for(marketing) == ExportEstimate(rows_per_day=50, bytes_per_row=9)
    assert exports.limits.daily_limits() == DailyLimits(jobs=10, bytes=500_000_000, rows=1_000_000)
    assert exports.reserve.usage() == Usage(jobs=2, bytes=50_000_000, rows=100_000)
    assert (exports.job_name_prefix, exports.max_days_per_job) == ("Acme_exports-1", 7)
    assert exports.collect_timeout_seconds == 60


def test_every_export_signal_type_is_accepted() -> None:
    exports = parse({"definitions": [definition(signal_types=list(EXPORT_SIGNAL_TYPES))]})
    assert len(exports.definitions[0].signal_types) == 28


def test_an_unknown_signal_type_is_refused_at_its_index() -> None:
    [problem] = problems({"definitions": [definition(signal_types=["order", "emailOpn"])]})
    assert problem.startswith(
        f"{FILE}: exports.definitions.0.signal_types.1: 'emailOpn' is not an export signal type; "
        "expected one of the 28: addToCart, "
    )


@pytest.mark.parametrize(
    ("exports", "path", "words"),
    [
        (
            {"definitions": [definition(folder="Import/Signals")]},
            "exports.definitions.0.folder",
            ['"Import/Signals"', "Export/Signals"],
        ),
        (
            {"definitions": [definition(folder="Export/Signals/a.b")]},
            "exports.definitions.0.folder",
            ['"Export/Signals/a.b"', "only letters, digits, spaces, -, _ and /"],
        ),
        (
            {"definitions": [definition(folder="Export/Signals//a")]},
            "exports.definitions.0.folder",
            ['"Export/Signals//a"', "without empty segments"],
        ),
        (
            {"definitions": [definition(naming_prefix="a/b")]},
            "exports.definitions.0.naming_prefix",
            ["'a/b'", "naming_prefix"],
        ),
        (
            {"definitions": [definition(notify=["ok@example.com", "data-team"])]},
            "exports.definitions.0.notify.1",
            ["'data-team'", "not an e-mail address"],
        ),
        (
            {"definitions": [definition(), definition(signal_types=["order"])]},
            "exports.definitions.1.name",
            ["'behavior'", "already used by export definition 0"],
        ),
        (
            {"definitions": [definition("Behavior")]},
            "exports.definitions.0.name",
            ["'Behavior'", "[a-z0-9_]+"],
        ),
        (
            {"definitions": [definition(signal_types=[])]},
            "exports.definitions.0.signal_types",
            ["at least one signal type"],
        ),
        (
            {"definitions": [definition(signal_types=["order", "pageView", "order"])]},
            "exports.definitions.0.signal_types.2",
            ["order is listed twice"],
        ),
        ({"limits": {"jobs": 21}}, "exports.limits.jobs", ["21", "less than or equal to 20"]),
        (
            {"limits": {"rows": 2_000_001}},
            "exports.limits.rows",
            ["2000001", "less than or equal to 2000000"],
        ),
        ({"reserve": {"jobs": 20}}, "exports.reserve.jobs", ["reserve.jobs = 20 leaves nothing"]),
        (
            {"limits": {"rows": 500}, "reserve": {"rows": 600}},
            "exports.reserve.rows",
            ["reserve.rows = 600", "daily limit 500"],
        ),
        ({"reserve": {"bytes": -1}}, "exports.reserve.bytes", ["-1"]),
        ({"job_name_prefix": "bad prefix!"}, "exports.job_name_prefix", ["'bad prefix!'"]),
        ({"job_name_prefix": "p" * 41}, "exports.job_name_prefix", ["1-40", "'ppp"]),
        ({"max_days_per_job": 0}, "exports.max_days_per_job", ["got 0"]),
        (
            {"definitons": []},
            "exports.definitons",
            ["unknown key `definitons`", "definitions"],
        ),
        (
            {"definitions": [definition(folders="Export/Signals/x")]},
            "exports.definitions.0.folders",
            ["unknown key `folders`", "folder"],
        ),
    ],
)
def test_bad_settings_name_their_path_and_value(
    exports: dict[str, Any], path: str, words: list[str]
) -> None:
    found = problems(exports)
    at_path = [p for p in found if p.startswith(f"{FILE}: {path}: ")]
    assert at_path, found
    assert any(all(w in p for w in words) for p in at_path), at_path


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    found = problems(
        {
            "job_name_prefix": "no spaces",
            "definitions": [
                definition(folder="Elsewhere"),
                definition("marketing", notify=["x"]),
            ],
        }
    )
    assert [p.split(": ")[1] for p in found] == [
        "exports.job_name_prefix",
        "exports.definitions.0.folder",
        "exports.definitions.1.notify.0",
    ]
