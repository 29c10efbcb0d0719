"""SFTP public keys as `updatePublicKeyForConnectUser` takes them: OpenSSH Ed25519 lines only.

Reference §5.1 and §8 #19: the documentation only ever shows `ssh-keygen -t ed25519`, so the
sandbox accepts `ssh-ed25519 <base64 blob> [comment]` and refuses every other key type.
"""

from __future__ import annotations

import base64
import binascii
import struct

ED25519 = "ssh-ed25519"
ED25519_KEY_BYTES = 32


class PublicKeyError(ValueError):
    """A public key line that is not a usable OpenSSH Ed25519 public key."""


def parse_ed25519_public_key(text: str) -> bytes:
    """The 32-byte Ed25519 key of an OpenSSH public key line; raises PublicKeyError otherwise."""
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise PublicKeyError(f'is not an OpenSSH public key line "{ED25519} AAAA… [comment]"')
    key_type, blob_text = parts[0], parts[1]
    if key_type != ED25519:
        raise PublicKeyError(f"has key type {key_type!r}; only {ED25519} keys are accepted")
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError("has a key blob that is not valid base64") from None
    fields = _ssh_strings(blob)
    if not fields:
        raise PublicKeyError("has a key blob that is not an SSH public key")
    if fields[0] != ED25519.encode():
        raise PublicKeyError(
            f"says {ED25519} but its blob holds a {fields[0].decode(errors='replace')!r} key"
        )
    if len(fields) != 2:
        raise PublicKeyError("has a key blob that is not an SSH public key")
    if len(fields[1]) != ED25519_KEY_BYTES:
        raise PublicKeyError(f"has a {len(fields[1])}-byte key; Ed25519 keys have 32 bytes")
    return fields[1]


def _ssh_strings(blob: bytes) -> list[bytes] | None:
    """Split an SSH wire blob into its length-prefixed strings; None if it is malformed."""
    fields: list[bytes] = []
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        if offset + length > len(blob):
            return None
        fields.append(blob[offset : offset + length])
        offset += length
    return fields
