"""Run one real-client scenario and print a JSON summary (used inside ``unshare -rn``).

usage: clients_driver.py MODE CLIENT RUNS_DIR
MODE: certify | down | noedit | break | no-model
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from cto_harness.model_server import load_script
from cto_harness.providers import RunOptions
from cto_harness.providers._gates import env_var
from cto_harness.runner import RunRequest, RunResult, run_stage2
from cto_harness.selfcheck._certify import certify, run_scripted

SCRIPTS = Path(__file__).resolve().parent / "scripts"
FIXTURE = "r1-string-slugify"
TIMEOUT_S = 180.0


def _summary(result: RunResult, model_requests: int) -> dict[str, Any]:
    report = result.report
    log = result.run_dir / "backend" / "model-server.jsonl"
    protocols = sorted({json.loads(line).get("protocol") for line in log.read_text().splitlines() if line.strip()}
                       ) if log.is_file() else []
    return {"verdict": report.verdict, "failure_class": report.failure_class, "lane": report.lane,
            "usage": report.usage.model_dump() if report.usage else None, "model_requests": model_requests,
            "process_started": report.backend.process_started, "duration_s": report.duration_s,
            "timed_out": report.backend.timed_out,
            "reasons": report.reasons, "run_dir": str(result.run_dir), "protocols": protocols}


def main(mode: str, client: str, runs_dir: Path) -> dict[str, Any]:
    environ = dict(os.environ)
    if mode == "certify":
        result = certify(client, runs_dir=runs_dir, environ=environ, timeout_s=TIMEOUT_S)
        return {"ok": result.ok, "table": result.table(),
                "fixtures": [{"fixture": f.fixture, "ok": f.ok, "verdict": f.verdict, "lane": f.lane,
                              "failure_class": f.failure_class, "model_requests": f.model_requests,
                              "run_dir": str(f.run_dir)} for f in result.fixtures]}
    if mode == "no-model":
        for suffix in ("MODEL", "MODEL_PROVIDER"):
            environ.pop(env_var(client, suffix), None)
        result = run_stage2(RunRequest(provider=client, fixture=FIXTURE, runs_dir=runs_dir, environ=environ,
                                       options=RunOptions(timeout_s=TIMEOUT_S)))
        return _summary(result, 0)
    script = {"noedit": "r1-noedit.toml", "break": "r1-break.toml"}.get(mode)
    run = run_scripted(client, FIXTURE, runs_dir=runs_dir, environ=environ, timeout_s=TIMEOUT_S,
                       script=load_script(SCRIPTS / script) if script else None, endpoint_down=mode == "down")
    return _summary(run.result, run.model_requests)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))))
