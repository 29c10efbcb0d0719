"""The S3 sandbox: a real S3 API over HTTP on 127.0.0.1, and the `sandbox` command around another."""

from __future__ import annotations

import sys
import textwrap

import boto3

from acoustic_pipelines.cli.main import main
from acoustic_pipelines.sandbox.s3 import serve_s3


def test_serves_the_s3_api_with_its_buckets() -> None:
    with serve_s3(buckets=["alias-one", "alias-two"]) as sandbox:
        assert sandbox.endpoint_url.startswith("http://127.0.0.1:")
        client = boto3.client(
            "s3",
            endpoint_url=sandbox.endpoint_url,
            aws_access_key_id=sandbox.access_key,
            aws_secret_access_key=sandbox.secret,
            region_name=sandbox.region,
        )
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert {"alias-one", "alias-two"} <= names
        client.put_object(Bucket="alias-one", Key="a.csv", Body=b"x,y\r\n1,2\r\n")
        assert (
            client.get_object(Bucket="alias-one", Key="a.csv")["Body"].read() == b"x,y\r\n1,2\r\n"
        )


def test_sandbox_command_runs_a_command_against_it(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, boto3
        client = boto3.client(
            "s3",
            endpoint_url=os.environ["ACOUSTIC_S3_ENDPOINT_URL"],
            aws_access_key_id=os.environ["ACOUSTIC_S3_ACCESS_KEY"],
            aws_secret_access_key=os.environ["ACOUSTIC_S3_SECRET"],
            region_name="us-east-1",
        )
        names = [b["Name"] for b in client.list_buckets()["Buckets"]]
        sys.exit(0 if "demo-access-point-alias" in names else 3)
        """
    )
    folder = ["--dir", str(tmp_path / "sandbox")]
    assert main(["sandbox", *folder, "--", sys.executable, "-c", script]) == 0
    assert main(["sandbox", *folder, "--", sys.executable, "-c", "raise SystemExit(5)"]) == 5
