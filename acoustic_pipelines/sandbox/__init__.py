"""Local stand-ins for the remote services, served on 127.0.0.1 (DESIGN.md, Embedded default)."""
