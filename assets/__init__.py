"""The Dagster assets and asset checks: thin wrappers that call the library and emit metadata."""
