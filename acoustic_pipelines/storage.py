"""Where data lives: a local folder or an `s3://bucket/prefix`, behind one `pyarrow.fs` interface."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


class StorageError(RuntimeError):
    """A location cannot be opened, listed or written."""


@dataclass(frozen=True)
class Location:
    """A folder on some filesystem: `fs` plus the `root` path inside it, and the `uri` users wrote."""

    fs: pafs.FileSystem
    root: str
    uri: str

    @property
    def is_local(self) -> bool:
        """Whether the location is a folder on this machine (renames are atomic there)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """The filesystem path of `parts` below the root."""
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def uri_of(self, path: str) -> str:
        """A user-facing URI for a filesystem path inside this location."""
        return f"s3://{path}" if not self.is_local else path

    def relative(self, path: str) -> str:
        """`path` relative to the root, as written in reject rows and metadata."""
        root = self.root.rstrip("/") + "/"
        return path[len(root) :] if path.startswith(root) else path


def open_location(uri: str, *, s3_endpoint_url: str | None = None) -> Location:
    """Open a local folder or `s3://bucket/prefix`.

    S3 credentials and region come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`); `s3_endpoint_url` aims at a non-AWS endpoint such as
    the sandbox or moto on 127.0.0.1.
    """
    if uri.startswith("s3://"):
        return Location(
            fs=_s3_filesystem(s3_endpoint_url), root=uri[len("s3://") :].rstrip("/"), uri=uri
        )
    if "://" in uri:
        raise StorageError(f"location {uri!r}: only local folders and s3:// URIs are supported")
    root = str(Path(uri).expanduser().resolve())
    return Location(fs=pafs.LocalFileSystem(), root=root, uri=root)


def _s3_filesystem(endpoint_url: str | None) -> pafs.S3FileSystem:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not endpoint_url:
        return pafs.S3FileSystem(region=region)
    scheme, _, host = endpoint_url.partition("://")
    if not host:
        raise StorageError(f"S3 endpoint {endpoint_url!r} must look like http://host:port")
    return pafs.S3FileSystem(region=region, scheme=scheme, endpoint_override=host.rstrip("/"))
