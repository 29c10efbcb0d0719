"""The Dagster code location: one `Definitions` assembled from `assets/` and `resources/`."""

import dagster as dg

from assets import segment
from resources import LakeResource, SegmentArchiveResource

defs = dg.Definitions(
    assets=[segment.raw_events],
    asset_checks=[segment.raw_events_partition_consistent],
    resources={
        "segment_archive": SegmentArchiveResource(),
        "lake": LakeResource(),
    },
)
