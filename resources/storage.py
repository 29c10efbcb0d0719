"""Resources for where data is read and written: the Segment archive and the Parquet lake."""

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import Location, open_location

_ENDPOINT_HELP = f"Non-AWS S3 endpoint; unset: ${settings.S3_ENDPOINT_ENV}, else AWS"


class _LocationResource(dg.ConfigurableResource):
    """A folder or s3:// location whose unset fields fall back to the environment at run time."""

    location: str | None = None
    s3_endpoint_url: str | None = Field(default=None, description=_ENDPOINT_HELP)

    def _open(self, default: str) -> Location:
        return open_location(
            self.location or default,
            s3_endpoint_url=self.s3_endpoint_url or settings.s3_endpoint_url(),
        )


class SegmentArchiveResource(_LocationResource):
    """The Segment S3-archive root (a folder or s3://bucket/prefix) holding `segment-logs/`."""

    location: str | None = Field(
        default=None,
        description=f"Archive root; unset: ${settings.ARCHIVE_ENV}, else {settings.DEFAULT_ARCHIVE}",
    )

    complete_after_next_day_file: bool = Field(
        default=True,
        description="A day of the archive is complete once a file of the next day exists "
        "(Segment writes the days in order).",
    )
    cutoff_hour_utc: int | None = Field(
        default=6,
        ge=0,
        le=23,
        description="A day of the archive is complete once this hour (UTC) of the next day has "
        "passed, whatever the files; unset: only the next day's file counts.",
    )

    def get_location(self) -> Location:
        """Open the archive root (the environment is read here, at run time)."""
        return self._open(settings.archive_location())


class LakeResource(_LocationResource):
    """The Parquet lake (a folder or s3://bucket/prefix) the assets write their partitions to."""

    location: str | None = Field(
        default=None,
        description=f"Lake root; unset: ${settings.LAKE_ENV}, else {settings.DEFAULT_LAKE}",
    )

    def get_lake(self) -> Lake:
        """Open the lake (the environment is read here, at run time)."""
        return Lake(self._open(settings.lake_location()))
