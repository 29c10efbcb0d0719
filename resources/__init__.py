"""Dagster resources that hand the library's storage and clients to the assets."""

from resources.connect import AcousticConnectResource
from resources.storage import LakeResource, SegmentArchiveResource

__all__ = ["AcousticConnectResource", "LakeResource", "SegmentArchiveResource"]
