"""`acoustic-pipelines connections test-mapping`: Segment's Test Mapping for one warehouse record.

Reads the row of `--model` whose primary key is `--id` from the warehouse (the environment
variable the config's `connections.warehouse_env` names) and prints, for each enabled mapping,
the Spec message it would send, or Segment's reason for refusing the record. Nothing is sent
(Segment's own Test Mapping for this destination only validates, too).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from acoustic_pipelines.config.loading import ConfigError, load_config
from acoustic_pipelines.connections.preview import preview_record
from acoustic_pipelines.connections.warehouse import WarehouseError, warehouse_location


def add_connections_commands(commands: Any) -> None:
    """Register `connections test-mapping` on the command's subparsers."""
    connections = commands.add_parser(
        "connections", help="Segment Connections (reverse ETL): try a model's mappings"
    )
    actions = connections.add_subparsers(required=True, metavar="ACTION")
    test_mapping = actions.add_parser(
        "test-mapping",
        help="show each mapping's message for one record of a model (sends nothing)",
    )
    test_mapping.add_argument("--config", default=None, help="pipeline config file")
    test_mapping.add_argument("--model", required=True, help="the model's name")
    test_mapping.add_argument("--id", required=True, help="the record's primary key")
    test_mapping.set_defaults(run=_run_test_mapping)


def _run_test_mapping(args: argparse.Namespace) -> int:
    """Print each enabled mapping's message (or refusal) for one record."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    if config.connections is None:
        print("connections test-mapping: the config has no `connections:` section", file=sys.stderr)
        return 1
    try:
        model = config.connections.model(args.model)
        previews = preview_record(
            model, args.id, warehouse=warehouse_location(config.connections.warehouse_env)
        )
    except (KeyError, LookupError, WarehouseError) as exc:
        print(f"connections test-mapping: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    if not previews:
        print(f"model {model.name} has no enabled mapping")
    for preview in previews:
        print(f"== {preview.mapping} ({preview.action}, sends {preview.send} records)")
        if preview.message is not None:
            print(json.dumps(preview.message, indent=2, ensure_ascii=False))
        else:
            print(f"rejected: {preview.rejected}")
    return 0
