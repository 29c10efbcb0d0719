"""What the Dagster catalog shows of an asset: column schemas from Arrow schemas, sizes in MB,
shares in percent, and code references."""

import warnings
from collections.abc import Mapping, Sequence

import dagster as dg
import pyarrow as pa

MB = 1_000_000

# Code references are Dagster "beta"; chosen deliberately (a link to the source on every asset).
warnings.filterwarnings(
    "ignore",
    message="(Class `(CodeReferencesMetadataValue|LocalFileCodeReference)`"
    "|Function `with_source_code_references`)",
    category=dg.BetaWarning,
)


def column_schema(
    schema: pa.Schema, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    """A `dg.TableSchema` of an Arrow schema, with optional per-column descriptions."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=f.name, type=str(f.type), description=descriptions.get(f.name))
            for f in schema
        ]
    )


def megabytes(size: int) -> dg.MetadataValue:
    """A byte count as MB (10^6 bytes), two decimals."""
    return dg.MetadataValue.float(round(size / MB, 2))


def percent(share: float) -> dg.MetadataValue:
    """A share (0..1) as a percentage, two decimals."""
    return dg.MetadataValue.float(round(share * 100, 2))


#: The code version of an asset that declares none (an external asset has none: Segment writes it).
DEFAULT_CODE_VERSION = "1"


def with_code_version(
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Each executable asset with a code version: its own, else `DEFAULT_CODE_VERSION`."""
    return [
        a
        if isinstance(a, dg.AssetSpec) or not a.is_executable
        else dg.map_asset_specs(
            lambda spec: (
                spec
                if spec.code_version
                else spec.replace_attributes(code_version=DEFAULT_CODE_VERSION)
            ),
            [a],
        )[0]
        for a in assets
    ]


def with_code_references(
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Each asset with a link to the source line that defines it (shown on its asset page)."""
    return list(dg.with_source_code_references(list(assets)))
