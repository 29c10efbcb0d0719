"""Segment's own implementation as the speed anchor: `../shared/bench/segment-oracle/bench_node.js`.

    from oracle import run_oracle
    segment = run_oracle(Path("events.jsonl"))  # None (and why, on stderr) when it cannot run

Runs Segment's published packages (FQL + mapping-kit + the Acoustic flattening) over a JSONL file
of events in a Node process and returns what it prints (counts, seconds, events_per_s,
peak_rss_mb). The packages live in `$ORACLE_DIR`, else `~/.cache/segment-oracle`; when they are
missing and npm is on the machine they are installed there once (from the npm registry). Without
Node, npm or the packages every benchmark still reports our own figures and says the ratio is
missing, and why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

ORACLE_SOURCE: Final = Path(__file__).resolve().parents[1].parent / "shared/bench/segment-oracle"
DEFAULT_ORACLE_DIR: Final = Path.home() / ".cache/segment-oracle"


def oracle_dir() -> Path:
    """Where Segment's packages are installed: `$ORACLE_DIR`, else `~/.cache/segment-oracle`."""
    return Path(os.environ.get("ORACLE_DIR") or DEFAULT_ORACLE_DIR).expanduser()


def ensure_oracle() -> Path | str:
    """The oracle's package folder, installing the packages once if npm can; else why not."""
    script = ORACLE_SOURCE / "bench_node.js"
    if not script.exists():
        return f"no {script} (the shared folder beside the repository)"
    if shutil.which("node") is None:
        return "Node is not on this machine"
    folder = oracle_dir()
    if (folder / "node_modules/@segment/actions-core").exists():
        return folder
    if shutil.which("npm") is None:
        return f"Segment's packages are not in {folder} and npm is not on this machine"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ORACLE_SOURCE / "package.json", folder / "package.json")
    print(f"installing Segment's packages into {folder} (npm, once)", file=sys.stderr)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"npm install in {folder} failed: {done.stderr.strip()[-300:]}"
    return folder


def run_oracle(events: Path, mode: str = "stream") -> dict[str, Any] | None:
    """Segment's figures on these events (`stream`: read + parse + work; `preload`: work only).

    None, with the reason on stderr, when Node or the packages are absent.
    """
    folder = ensure_oracle()
    if isinstance(folder, str):
        print(f"Segment's implementation not measured: {folder}", file=sys.stderr)
        return None
    done = subprocess.run(
        ["node", str(ORACLE_SOURCE / "bench_node.js"), str(events), "--mode", mode],
        env={**os.environ, "ORACLE_DIR": str(folder)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"Segment's implementation failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio_text(ours_per_s: float, segment: dict[str, Any] | None) -> str:
    """`4.8x Segment's 22,900 events/s`, or why there is no ratio."""
    if segment is None:
        return "no ratio (Segment's implementation not measured; see above)"
    theirs = float(segment["events_per_s"])
    return f"{ours_per_s / theirs:.1f}x Segment's {theirs:,.0f} events/s"
