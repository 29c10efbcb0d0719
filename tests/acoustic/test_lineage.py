"""Column lineage from mappings as written: header columns, whole sections, keys inside a section,
`@if`/`@template`/`@arrayPath` references, constants, and the default config's mappings."""

from __future__ import annotations

from acoustic_pipelines.acoustic.lineage import column_sources
from acoustic_pipelines.config.loading import load_config

TRACK = {
    "uniqueRecipientId": {
        "@if": {
            "exists": {"@path": "$.properties.email"},
            "then": {"@path": "$.properties.email"},
            "else": {"@path": "$.context.traits.email"},
        }
    },
    "type": {"@path": "$.type"},
    "timestamp": {"@path": "$.timestamp"},
    "properties": {"@path": "$.properties"},
    "context": {"@path": "$.context"},
}


def test_header_columns_come_from_their_directives() -> None:
    sources = column_sources([TRACK], ["uniqueRecipient", "eventSource", "timestamp"])
    assert sources == {
        "uniqueRecipient": ("context.traits.email", "properties.email"),
        "eventSource": ("type",),
        "timestamp": ("timestamp",),
    }


def test_a_section_mapped_whole_continues_the_field_path() -> None:
    sources = column_sources([TRACK], ["total", "products.0.sku", "page.url"])
    assert sources["total"] == ("context.total", "properties.total")
    assert sources["products.0.sku"] == ("context.products.0.sku", "properties.products.0.sku")


def test_keys_inside_a_section_object_name_their_own_fields() -> None:
    mapping = {
        "uniqueRecipientId": {"@path": "$.userId"},
        "properties": {
            "revenue": {"@path": "$.properties.total"},
            "label": {"@template": "{{properties.name}} ({{event}})"},
            "cart": {"@path": "$.properties.cart"},
            "channel": "web",  # a constant feeds nothing
            "items": [{"@path": "$.properties.first_item"}],
        },
        "array_data": {"@arrayPath": ["$.properties.products", {"sku": {"@path": "$.sku"}}]},
    }
    columns = ["revenue", "label", "cart.size", "channel", "items.0", "uniqueRecipient", "total"]
    sources = column_sources([mapping], columns)
    assert sources == {
        "revenue": ("properties.total",),
        "label": ("event", "properties.name"),
        "cart.size": ("properties.cart.size",),
        "items.0": ("properties.first_item",),
        "uniqueRecipient": ("userId",),
    }


def test_a_computed_value_does_not_continue_its_path() -> None:
    mapping = {"properties": {"name": {"@template": "{{properties.first}}"}}}
    assert column_sources([mapping], ["name", "name.x"]) == {"name": ("properties.first",)}


def test_mappings_are_united_and_header_columns_ignore_sections() -> None:
    identify = {"uniqueRecipientId": {"@path": "$.traits.email"}, "traits": {"@path": "$.traits"}}
    sources = column_sources([TRACK, identify], ["uniqueRecipient", "email"])
    assert sources["uniqueRecipient"] == (
        "context.traits.email",
        "properties.email",
        "traits.email",
    )
    assert sources["email"] == ("context.email", "properties.email", "traits.email")


def test_the_default_config_traces_every_fixed_acoustic_column() -> None:
    config = load_config()
    mappings = [m.mapping.raw for d in config.destinations for m in d.mappings]
    sources = column_sources(mappings, ["uniqueRecipient", "eventSource", "timestamp"])
    assert set(sources) == {"uniqueRecipient", "eventSource", "timestamp"}
    assert "traits.email" in sources["uniqueRecipient"]
