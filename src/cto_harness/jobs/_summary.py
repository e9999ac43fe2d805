"""summary.json: pass@k and pass^k per (agent, fixture), failure classes, durations, usage.

Only the latest run dir of each trial counts. ``n`` is the number of trials with a scored
verdict (pass/fail/blocked); ``error`` trials are harness-side, counted apart, and left out
of the estimators (they say nothing about the agent).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from math import comb
from pathlib import Path
from typing import Any

from cto_harness.evidence import Report, atomic_write_json
from cto_harness.jobs._plan import SCORED, Trial, latest_dirs, read_report

SUMMARY_FILE = "summary.json"
SUMMARY_SCHEMA = "cto-harness.job-summary/1"


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased estimator of P(at least one of k samples passes): 1 - C(n-c, k) / C(n, k).

    None when fewer than k trials were scored.
    """
    if k < 1 or n < k:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """Unbiased estimator of P(all k samples pass): C(c, k) / C(n, k). None when n < k."""
    if k < 1 or n < k:
        return None
    return comb(c, k) / comb(n, k)


def _usage_total(reports: list[Report]) -> dict[str, float | int | None]:
    totals: dict[str, float | int | None] = {}
    for key in ("input_tokens", "output_tokens", "cost_usd", "calls"):
        values = [getattr(r.usage.best, key) for r in reports if getattr(r.usage.best, key, None) is not None]
        totals[key] = round(sum(values), 6) if values else None
    return totals


def _durations(reports: list[Report]) -> dict[str, float | None]:
    values = [r.duration_s for r in reports]
    if not values:
        return {"total_s": 0.0, "mean_s": None, "min_s": None, "max_s": None}
    return {"total_s": round(sum(values), 3), "mean_s": round(sum(values) / len(values), 3),
            "min_s": round(min(values), 3), "max_s": round(max(values), 3)}


def _estimators(n: int, c: int, attempts: int) -> tuple[dict[str, float | None], dict[str, float | None]]:
    at = {str(k): _round(pass_at_k(n, c, k)) for k in range(1, attempts + 1)}
    hat = {str(k): _round(pass_hat_k(n, c, k)) for k in range(1, attempts + 1)}
    return at, hat


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def summarize(job_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Build the summary from the run dirs on disk (the index is never consulted)."""
    spec = job["spec"]
    attempts = int(spec["attempts"])
    trials = [Trial(t["agent"], t["fixture"], int(t["attempt"])) for t in job["trials"]]
    latest: dict[Trial, tuple[Path, Report | None]] = {
        trial: (path, read_report(path)) for trial, path in latest_dirs(job_dir, trials).items()}
    rows = []
    verdicts: Counter[str] = Counter()
    for agent in (a["name"] for a in spec["agents"]):
        for fixture in spec["fixtures"]:
            mine = [t for t in trials if t.agent == agent and t.fixture == fixture]
            entries = []
            reports = []
            for trial in mine:
                path, report = latest.get(trial, (None, None))
                verdict = report.verdict if report else None
                verdicts[verdict or "missing"] += 1
                if report is not None:
                    reports.append(report)
                entries.append({
                    "attempt": trial.attempt,
                    "run_dir": path.relative_to(job_dir).as_posix() if path else None,
                    "verdict": verdict,
                    "failure_class": report.failure_class if report else None,
                    "duration_s": report.duration_s if report else None,
                })
            scored = [r for r in reports if r.verdict in SCORED]
            n, c = len(scored), sum(r.verdict == "pass" for r in scored)
            at, hat = _estimators(n, c, attempts)
            rows.append({
                "agent": agent,
                "fixture": mine[0].fixture_key if mine else fixture,
                "fixture_ref": fixture,
                "attempts": len(mine),
                "scored": n,
                "passes": c,
                "errors": sum(r.verdict == "error" for r in reports),
                "missing": len(mine) - len(reports),
                "pass_at_k": at,
                "pass_hat_k": hat,
                "failure_classes": dict(sorted(Counter(r.failure_class for r in reports if r.failure_class).items())),
                "duration": _durations(reports),
                "usage": _usage_total(reports),
                "trials": entries,
            })
    return {
        "schema_version": SUMMARY_SCHEMA,
        "job": job["name"],
        "attempts": attempts,
        "complete": verdicts.get("missing", 0) == 0,
        "verdicts": dict(sorted(verdicts.items())),
        "rows": rows,
        "agents": _agent_totals(rows),
    }


def _agent_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals = []
    for agent in dict.fromkeys(r["agent"] for r in rows):
        mine = [r for r in rows if r["agent"] == agent]
        classes: Counter[str] = Counter()
        for row in mine:
            classes.update(row["failure_classes"])
        pass1 = [r["pass_at_k"].get("1") for r in mine if r["pass_at_k"].get("1") is not None]
        scored = sum(r["scored"] for r in mine)
        passes = sum(r["passes"] for r in mine)
        usage: dict[str, float | int | None] = {}
        for key in ("input_tokens", "output_tokens", "cost_usd", "calls"):
            values = [r["usage"][key] for r in mine if r["usage"][key] is not None]
            usage[key] = round(sum(values), 6) if values else None
        totals.append({
            "agent": agent,
            "trials": sum(r["attempts"] for r in mine),
            "scored": scored,
            "passes": passes,
            "errors": sum(r["errors"] for r in mine),
            "pass_rate": round(passes / scored, 6) if scored else None,
            "mean_pass_at_1": round(sum(pass1) / len(pass1), 6) if pass1 else None,
            "failure_classes": dict(sorted(classes.items())),
            "duration_total_s": round(sum(r["duration"]["total_s"] for r in mine), 3),
            "usage": usage,
        })
    return totals


def write_summary(job_dir: Path, summary: dict[str, Any]) -> Path:
    path = job_dir / SUMMARY_FILE
    atomic_write_json(path, summary)
    return path


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    k = str(summary["attempts"])
    header = ["agent", "fixture", "passes", "pass@1", f"pass@{k}", f"pass^{k}", "errors", "failure classes"]
    body = []
    for row in summary["rows"]:
        classes = ", ".join(f"{name}: {count}" for name, count in row["failure_classes"].items()) or "-"
        body.append([row["agent"], row["fixture"], f"{row['passes']}/{row['attempts']}",
                     _pct(row["pass_at_k"].get("1")), _pct(row["pass_at_k"].get(k)), _pct(row["pass_hat_k"].get(k)),
                     str(row["errors"]), classes])
    return header, body


def format_summary(summary: dict[str, Any], fmt: str) -> str:
    """Render as ``table``, ``md``, ``json`` or ``csv``."""
    if fmt == "json":
        return json.dumps(summary, indent=2, ensure_ascii=False)
    header, body = table_rows(summary)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return out.getvalue().rstrip("\n")
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *body]]
    return "\n".join(lines)


def predictions(job_dir: Path, summary: dict[str, Any]) -> list[dict[str, str]]:
    """SWE-bench-style predictions: one per latest trial that produced a patch file."""
    out = []
    for row in summary["rows"]:
        for entry in row["trials"]:
            if entry["run_dir"] is None:
                continue
            patch = job_dir / entry["run_dir"] / "patch.diff"
            model = row["agent"] if summary["attempts"] == 1 else f"{row['agent']}@attempt-{entry['attempt']}"
            out.append({
                "instance_id": row["fixture"],
                "model_name_or_path": model,
                "model_patch": patch.read_text(encoding="utf-8", errors="replace") if patch.is_file() else "",
            })
    return out
