"""exportSignals: requests, daily quota, planning, the job ledger, submission, export files and
collection over SFTP."""
