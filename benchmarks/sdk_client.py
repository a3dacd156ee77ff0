"""The official Huawei Cloud Python SDK doing the orchestrator's work, for comparison.

    HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... \\
        python benchmarks/sdk_client.py URL INVENTORY.csv THREADS [FIRST [CAP]]

A pool of THREADS threads; each takes servers from the inventory in turn, sends a
reinstall (ReinstallServerWithoutCloudInit, AK/SK signed by the SDK) and polls
ShowJob (first after FIRST s, backing off 1.5x up to CAP s; default 1 and 5, the
orchestrator's `--first-poll`/`--poll-cap` in the fleet benchmarks) until the job
ends. Less work than the orchestrator: no preflight, no verification, no state
file, no log, no report. Prints one JSON line: targets, succeeded, errors, the
calls it made by API, wall seconds. Run by benchmarks/targets.py as its own
process, so that its CPU time can be read from its rusage.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import (
    EcsClient,
    ReinstallServerWithoutCloudInitOption,
    ReinstallServerWithoutCloudInitRequest,
    ReinstallServerWithoutCloudInitRequestBody,
    ShowJobRequest,
)


def client_for(url: str, project_id: str) -> Any:
    config = HttpConfig.get_default_config()
    config.timeout = (10, 30)
    credentials = BasicCredentials(
        os.environ["HUAWEICLOUD_SDK_AK"], os.environ["HUAWEICLOUD_SDK_SK"], project_id
    )
    return (
        EcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([url])
        .build()
    )


def main() -> int:
    url, inventory, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    first = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    cap = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    with open(inventory, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    local = threading.local()
    done = {"succeeded": 0, "errors": 0, "reinstall_calls": 0, "job_calls": 0}
    lock = threading.Lock()

    def one(row: dict[str, str]) -> None:
        clients = getattr(local, "clients", None)
        if clients is None:
            clients = local.clients = {}
        client = clients.get(row["project_id"])
        if client is None:
            client = clients[row["project_id"]] = client_for(url, row["project_id"])
        ok = False
        calls = {"reinstall_calls": 0, "job_calls": 0}
        try:
            body = ReinstallServerWithoutCloudInitRequestBody(
                os_reinstall=ReinstallServerWithoutCloudInitOption(
                    keyname=row["keyname"], userid=row["userid"]
                )
            )
            calls["reinstall_calls"] += 1
            answer = client.reinstall_server_without_cloud_init(
                ReinstallServerWithoutCloudInitRequest(server_id=row["server_id"], body=body)
            )
            delay = first
            while True:
                time.sleep(delay)
                calls["job_calls"] += 1
                job = client.show_job(ShowJobRequest(job_id=answer.job_id))
                if job.status in ("SUCCESS", "FAIL"):
                    ok = job.status == "SUCCESS"
                    break
                delay = min(cap, delay * 1.5)
        except Exception:  # counted, as a run would report it
            ok = False
        with lock:
            done["succeeded" if ok else "errors"] += 1
            for name, n in calls.items():
                done[name] += n

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, rows))
    wall = time.monotonic() - started
    print(json.dumps({"targets": len(rows), **done, "wall_s": round(wall, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
