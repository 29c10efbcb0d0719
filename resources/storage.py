"""Resources for where data is read and written: the Segment archive and the Parquet lake."""

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import Location, open_location


class SegmentArchiveResource(dg.ConfigurableResource):
    """The Segment S3-archive root (a local folder or s3://bucket/prefix) holding `segment-logs/`."""

    location: str | None = Field(
        default=None,
        description=f"Archive root; unset: ${settings.ARCHIVE_ENV}, else {settings.DEFAULT_ARCHIVE}",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description=f"Non-AWS S3 endpoint; unset: ${settings.S3_ENDPOINT_ENV}, else AWS",
    )

    def get_location(self) -> Location:
        """Open the archive root (the environment is read here, at run time)."""
        return open_location(
            self.location or settings.archive_location(),
            s3_endpoint_url=self.s3_endpoint_url or settings.s3_endpoint_url(),
        )


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake (a local folder or s3://bucket/prefix) the assets write their partitions to."""

    location: str | None = Field(
        default=None,
        description=f"Lake root; unset: ${settings.LAKE_ENV}, else {settings.DEFAULT_LAKE}",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description=f"Non-AWS S3 endpoint; unset: ${settings.S3_ENDPOINT_ENV}, else AWS",
    )

    def get_lake(self) -> Lake:
        """Open the lake (the environment is read here, at run time)."""
        return Lake(
            open_location(
                self.location or settings.lake_location(),
                s3_endpoint_url=self.s3_endpoint_url or settings.s3_endpoint_url(),
            )
        )
