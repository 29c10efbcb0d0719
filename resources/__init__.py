"""Dagster resources that hand the library's storage and clients to the assets."""

from resources.storage import LakeResource, SegmentArchiveResource

__all__ = ["LakeResource", "SegmentArchiveResource"]
