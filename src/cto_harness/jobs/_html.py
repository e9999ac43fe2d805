"""report.html: one self-contained static page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from cto_harness.evidence import atomic_write_text

HTML_FILE = "report.html"

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#57606a;margin-bottom:12px}
table{border-collapse:collapse;margin:4px 0}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.score{font-weight:600;text-align:right}
.v-pass{color:#116329}.v-fail{color:#a40e26}.v-blocked{color:#9a6700}.v-error{color:#6e40c9}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
a{color:#0969da}
"""


def _score_cell(value: float | None) -> str:
    if value is None:
        return '<td class="score">-</td>'
    hue = round(120 * value)
    return f'<td class="score" style="background:hsl({hue},70%,85%)">{value * 100:.0f}%</td>'


def _summary_table(summary: dict[str, Any]) -> str:
    k = str(summary["attempts"])
    head = (f"<tr><th>agent</th><th>fixture</th><th>passes</th><th>pass@1</th><th>pass@{k}</th>"
            f"<th>pass^{k}</th><th>errors</th><th>mean duration</th></tr>")
    rows = []
    for row in summary["rows"]:
        mean = row["duration"]["mean_s"]
        rows.append(
            f'<tr class="row" data-agent="{escape(row["agent"])}" data-fixture="{escape(row["fixture"])}">'
            f"<td>{escape(row['agent'])}</td><td>{escape(row['fixture'])}</td>"
            f'<td class="num">{row["passes"]}/{row["attempts"]}</td>'
            f"{_score_cell(row['pass_at_k'].get('1'))}{_score_cell(row['pass_at_k'].get(k))}"
            f"{_score_cell(row['pass_hat_k'].get(k))}"
            f'<td class="num">{row["errors"]}</td>'
            f'<td class="num">{"-" if mean is None else f"{mean:.2f} s"}</td></tr>')
    return f'<table id="summary">{head}{"".join(rows)}</table>'


def _agents_table(summary: dict[str, Any]) -> str:
    head = "<tr><th>agent</th><th>trials</th><th>passes</th><th>pass rate</th><th>mean pass@1</th><th>errors</th></tr>"
    rows = []
    for agent in summary["agents"]:
        rows.append(
            f'<tr class="agent-row"><td>{escape(agent["agent"])}</td><td class="num">{agent["trials"]}</td>'
            f'<td class="num">{agent["passes"]}</td>{_score_cell(agent["pass_rate"])}'
            f'{_score_cell(agent["mean_pass_at_1"])}<td class="num">{agent["errors"]}</td></tr>')
    return f'<table id="agents">{head}{"".join(rows)}</table>'


def _failure_table(summary: dict[str, Any]) -> str:
    classes = sorted({name for agent in summary["agents"] for name in agent["failure_classes"]})
    if not classes:
        return '<p id="failure-classes">No failures.</p>'
    head = "<tr><th>agent</th>" + "".join(f"<th>{escape(c)}</th>" for c in classes) + "</tr>"
    rows = []
    for agent in summary["agents"]:
        cells = "".join(f'<td class="num">{agent["failure_classes"].get(c, 0)}</td>' for c in classes)
        rows.append(f'<tr class="failure-row"><td>{escape(agent["agent"])}</td>{cells}</tr>')
    return f'<table id="failure-classes">{head}{"".join(rows)}</table>'


def _duration_chart(summary: dict[str, Any]) -> str:
    bars = [(f"{r['agent']} / {r['fixture']}", r["duration"]["mean_s"], r["duration"]["max_s"])
            for r in summary["rows"] if r["duration"]["mean_s"] is not None]
    if not bars:
        return '<p id="duration-chart">No finished trials yet.</p>'
    top = max(b[2] for b in bars) or 1.0
    label_w, bar_w, row_h = 260, 420, 22
    height = row_h * len(bars) + 24
    parts = [f'<svg id="duration-chart" role="img" aria-label="mean trial duration" width="{label_w + bar_w + 200}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, mean, peak) in enumerate(bars):
        y = 4 + i * row_h
        parts.append(f'<text x="0" y="{y + 14}">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(1.0, bar_w * mean / top):.1f}" '
                     f'height="{row_h - 8}" fill="#54aeff"><title>{escape(label)}: mean {mean:.2f} s</title></rect>')
        parts.append(f'<line x1="{label_w + bar_w * peak / top:.1f}" x2="{label_w + bar_w * peak / top:.1f}" '
                     f'y1="{y + 2}" y2="{y + row_h - 4}" stroke="#0a3069" stroke-width="2"/>')
        parts.append(f'<text class="bar-value" x="{label_w + bar_w * peak / top + 6:.1f}" y="{y + 14}">'
                     f'{mean:.2f} s (max {peak:.2f} s)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _trials_table(summary: dict[str, Any]) -> str:
    head = "<tr><th>agent</th><th>fixture</th><th>attempt</th><th>verdict</th><th>class</th><th>duration</th></tr>"
    rows = []
    for row in summary["rows"]:
        for entry in row["trials"]:
            verdict = entry["verdict"] or "missing"
            link = (f'<a href="{escape(entry["run_dir"])}/report.json">{escape(entry["run_dir"])}</a>'
                    if entry["run_dir"] else "-")
            duration = "-" if entry["duration_s"] is None else f"{entry['duration_s']:.2f} s"
            rows.append(
                f'<tr class="trial-row"><td>{escape(row["agent"])}</td><td>{escape(row["fixture"])}</td>'
                f'<td>{link}</td><td class="v-{escape(verdict)}">{escape(verdict)}</td>'
                f'<td>{escape(entry["failure_class"] or "-")}</td><td class="num">{duration}</td></tr>')
    return f'<table id="trials">{head}{"".join(rows)}</table>'


def render_html(summary: dict[str, Any]) -> str:
    verdicts = ", ".join(f"{name} {count}" for name, count in summary["verdicts"].items())
    state = "complete" if summary["complete"] else "incomplete (resume with `cto-harness job resume`)"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>cto-harness job {escape(summary['job'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>Job {escape(summary['job'])}</h1>"
        f'<div class="meta">{summary["attempts"]} attempt(s) per pair · {escape(verdicts)} · {escape(state)}</div>'
        "<h2>pass@k per agent and fixture</h2>" + _summary_table(summary)
        + "<h2>Agents</h2>" + _agents_table(summary)
        + "<h2>Failure classes</h2>" + _failure_table(summary)
        + "<h2>Trial duration</h2>" + _duration_chart(summary)
        + "<h2>Trials</h2>" + _trials_table(summary)
        + "</body></html>\n"
    )


def write_html(job_dir: Path, summary: dict[str, Any]) -> Path:
    path = job_dir / HTML_FILE
    atomic_write_text(path, render_html(summary))
    return path
