"""The Acoustic (Actions) destination: Send Events rows, mapped tables, flat columns, CSV encoding
and delivery to the S3 access point, test-mapping."""
