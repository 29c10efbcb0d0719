"""The `acoustic-pipelines` command: demo, sandbox, sample, validate, test-mapping, sftp."""
