"""`dagster-daemon` with a shorter loop: `python daemon.py SECONDS run -w workspace.yaml`.

Dagster's backfill daemon waits a fixed 30 s between iterations (`DEFAULT_DAEMON_INTERVAL_SECONDS`,
not an instance setting); the UI tests shorten that wait so a backfill is followed in seconds.
Nothing else of the daemon changes.
"""

import sys

import dagster._daemon.controller as controller

if __name__ == "__main__":
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = int(sys.argv.pop(1))
    from dagster._daemon.cli import main

    sys.argv[0] = "dagster-daemon"
    main()
