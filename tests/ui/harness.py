"""Dagster the way the UI uses it: `dagster-webserver` and `dagster-daemon` on 127.0.0.1 over a
temporary DAGSTER_HOME holding the shipped `config/dagster.yaml`, the project's sandbox (Connect
GraphQL, SFTP, S3) for the remote services, and the webserver's GraphQL API for everything a
person would click: "Materialize" (launchRun), "Materialize all" over a range and a job's backfill
(launchPartitionBackfill, with the variables the UI sends), the runs, per-day materializations and
per-day check results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "acoustic_pipelines"
REPOSITORY = "__repository__"
ASSET_JOB = "__ASSET_JOB"
#: What the UI adds to every launch it makes (tagsWithUIExecutionTags in ui-core).
UI_TAGS = [{"key": "dagster/from_ui", "value": "true"}]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

#: The mutation the UI's LaunchAssetChoosePartitionsDialog sends (LAUNCH_PARTITION_BACKFILL_MUTATION).
LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
  }
}
"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions
      error { message }
      runs(limit: 1000) { runId status tags { key value } assetSelection { path } }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 1000) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status startTime endTime }
    ... on PythonError { message }
  }
}
"""

ASSET_NODES = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    isPartitioned
    isExecutable
    isObservable
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
}
"""

MATERIALIZATION_METADATA = """
query MaterializationMetadata($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 100) {
        runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on BoolMetadataEntry { boolValue }
          ... on PathMetadataEntry { path }
        }
      }
    }
  }
}
"""

CHECK_EXECUTIONS = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: 50) {
    runId status partition evaluation { success severity }
  }
}
"""

WORKSPACE = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


class GraphQLError(AssertionError):
    """The webserver answered with `errors`, or a result of an unexpected type."""


def free_port() -> int:
    """A TCP port nothing listens on, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def asset_path(key: str) -> dict[str, list[str]]:
    """`connect/export_jobs` as the GraphQL AssetKeyInput `{"path": ["connect", "export_jobs"]}`."""
    return {"path": key.split("/")}


@dataclass
class DagsterUI:
    """A running webserver + daemon and the GraphQL calls the UI makes."""

    url: str
    home: Path
    environment: dict[str, str]
    connect_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None

    # --- GraphQL -------------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one GraphQL request to the webserver; its `data`, or GraphQLError on `errors`."""
        answer = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def location_status(self) -> tuple[str, str | None]:
        """The code location's load status and, if it failed to load, the error."""
        entries = self.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]
        entry = next(e for e in entries if e["name"] == LOCATION)
        error = entry["locationOrLoadError"] or {}
        return entry["loadStatus"], error.get("message")

    def launch_backfill(
        self,
        assets: Iterable[str],
        partitions: Iterable[str],
        *,
        job: str | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Launch a backfill as the UI's partitions dialog does; returns the backfill id.

        Without `job` this is "Materialize all" (or "Materialize selected") from the asset graph:
        `assetSelection` + `partitionNames`. With `job` it is the job's backfill: the same plus
        the job's partition set selector.
        """
        params: dict[str, Any] = {
            "tags": UI_TAGS,
            "assetSelection": [asset_path(a) for a in assets],
            "partitionNames": list(partitions),
            "fromFailure": False,
        }
        if run_config is not None:
            params["runConfigData"] = dict(run_config)
        if job is not None:
            params["selector"] = {
                "partitionSetName": f"{job}_partition_set",
                "repositorySelector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                },
            }
        result = self.graphql(LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})[
            "launchPartitionBackfill"
        ]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill not launched: {result}")
        return result["backfillId"]

    def launch_run(
        self,
        assets: Iterable[str],
        partition: str,
        *,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Materialize `assets` for one partition, as the UI's "Materialize" button; the run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "pipelineName": ASSET_JOB,
                "assetSelection": [asset_path(a) for a in assets],
            },
            "mode": "default",
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {
                "tags": [*UI_TAGS, {"key": "dagster/partition", "value": partition}]
            },
        }
        result = self.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"run not launched: {result}")
        return result["run"]["runId"]

    def launch_job(self, job: str, *, run_config: Mapping[str, Any] | None = None) -> str:
        """Launch a job from its page ("Materialize all" of an unpartitioned job); the run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "pipelineName": job,
            },
            "mode": "default",
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": UI_TAGS},
        }
        result = self.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"run not launched: {result}")
        return result["run"]["runId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """The backfill's status, error, runs and per-asset partition counts."""
        result = self.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {result}")
        return result

    def wait_backfill(self, backfill_id: str, *, timeout: float = 240) -> dict[str, Any]:
        """Poll until the backfill is done and none of its runs is still going; its last state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.backfill(backfill_id)
            runs_done = all(r["status"] in FINISHED for r in state["runs"])
            if state["status"] in BACKFILL_DONE and runs_done:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"backfill {backfill_id} not done in {timeout}s: {state}")
            time.sleep(1)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's status and times."""
        return self.graphql(RUN, {"runId": run_id})["runOrError"]

    def wait_run(self, run_id: str, *, timeout: float = 180) -> dict[str, Any]:
        """Poll until the run has finished; its last state."""
        deadline = time.monotonic() + timeout
        while (state := self.run(run_id))["status"] not in FINISHED:
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} not finished in {timeout}s: {state}")
            time.sleep(0.5)
        return state

    def runs(self, *, tags: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Runs of the instance, optionally only those with these tags."""
        run_filter = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        result = self.graphql(RUNS, {"filter": run_filter})["runsOrError"]
        return result["results"]

    def asset_nodes(self) -> list[dict[str, Any]]:
        """Every asset of the location with its checks."""
        return self.graphql(ASSET_NODES)["assetNodes"]

    def materialized_partitions(self, asset: str, partitions: Iterable[str]) -> set[str]:
        """Which of `partitions` of `asset` have a materialization."""
        result = self.graphql(
            MATERIALIZATIONS, {"assetKey": asset_path(asset), "partitions": list(partitions)}
        )["assetOrError"]
        if result["__typename"] != "Asset":
            return set()
        return {m["partition"] for m in result["assetMaterializations"]}

    def materialization_metadata(self, asset: str) -> dict[str, dict[str, Any]]:
        """Per run id, the metadata of the asset's materialization in that run (numbers, flags, paths)."""
        result = self.graphql(MATERIALIZATION_METADATA, {"assetKey": asset_path(asset)})[
            "assetOrError"
        ]
        if result["__typename"] != "Asset":
            return {}
        found: dict[str, dict[str, Any]] = {}
        for materialization in result["assetMaterializations"]:
            entries = {}
            for entry in materialization["metadataEntries"]:
                for field_name in ("intValue", "boolValue", "path"):
                    if field_name in entry:
                        entries[entry["label"]] = entry[field_name]
            found[materialization["runId"]] = entries
        return found

    def check_executions(self, asset: str, check: str, partition: str) -> list[dict[str, Any]]:
        """The executions of one check recorded for one partition (newest first)."""
        return self.graphql(
            CHECK_EXECUTIONS,
            {"assetKey": asset_path(asset), "checkName": check, "partition": partition},
        )["assetCheckExecutions"]

    # --- the sandbox ---------------------------------------------------------------------------
    def sandbox(self, path: str, body: Any = None, *, method: str | None = None) -> Any:
        """Call the Connect sandbox's `/_sandbox/<path>` (GET, or POST when there is a body)."""
        verb = method or ("POST" if body is not None else "GET")
        answer = requests.request(
            verb, f"{self.connect_url}/_sandbox/{path}", json=body, timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, Any]:
        """`GET /_sandbox/stats`: signals stored, export jobs by state, today's usage, faults."""
        return self.sandbox("stats")

    def tracking_stats(self) -> dict[str, Any]:
        """The Tracking API sandbox's `GET /_sandbox/stats`: messages kept, duplicates absorbed."""
        endpoint = self.environment["SEGMENT_TRACKING_API_ENDPOINT"].removesuffix("/v1")
        answer = requests.get(f"{endpoint}/_sandbox/stats", timeout=30)
        answer.raise_for_status()
        return answer.json()


def _wait_until_loaded(ui: DagsterUI, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status: tuple[str, str | None] = ("(no answer)", None)
    while time.monotonic() < deadline:
        for process in ui.processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            status = ui.location_status()
        except (requests.ConnectionError, requests.Timeout, StopIteration):
            time.sleep(0.5)
            continue
        if status[0] == "LOADED":
            if status[1]:
                raise AssertionError(f"code location failed to load: {status[1]}")
            return
        time.sleep(0.5)
    raise AssertionError(f"code location not loaded in {timeout}s: {status}")


@contextmanager
def serve_dagster_ui(
    *,
    home: Path,
    environment: Mapping[str, str],
    connect_url: str,
    logs: Path,
    daemon_interval_seconds: int = 2,
    load_timeout: float = 120,
) -> Iterator[DagsterUI]:
    """Start `dagster-webserver` and `dagster-daemon` over `home` with `environment`; stop them after.

    The daemon's loops (backfills, sensors, schedules) tick every `daemon_interval_seconds`
    instead of Dagster's fixed 30 s (tests/ui/daemon.py); everything else is the shipped
    behaviour. Each process writes its output to a file under `logs`.
    """
    port = free_port()
    env = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    workspace = str(REPO_ROOT / "workspace.yaml")
    commands = {
        "webserver": [
            str(BIN / "dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(port), "-w", workspace),
        ],
        "daemon": [
            sys.executable,
            str(Path(__file__).with_name("daemon.py")),
            str(daemon_interval_seconds),
            *("run", "-w", workspace),
        ],
    }
    logs.mkdir(parents=True, exist_ok=True)
    ui = DagsterUI(
        url=f"http://127.0.0.1:{port}",
        home=home,
        environment=env,
        connect_url=connect_url.rstrip("/"),
        logs=logs,
    )
    with ExitStack() as stack:
        for name, command in commands.items():
            out = stack.enter_context((logs / f"{name}.log").open("wb"))
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            ui.processes.append(process)
            stack.callback(_stop, process)
        _wait_until_loaded(ui, timeout=load_timeout)
        yield ui


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (webserver/daemon and their code servers), SIGKILL if it lingers."""
    import signal

    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
