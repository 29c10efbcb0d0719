"""The pipeline config file: loading (errors with file and dotted path), destinations, signals,
exports, lint and secrets."""
