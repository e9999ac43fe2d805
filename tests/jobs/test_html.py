"""report.html in a real headless browser (Debian's chromium): rows, figures, links, offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.jobs.helpers import job_cli, only_job_dir, summary, write_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={cwd / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("html")
    spec = write_spec(tmp_path / "job.toml", name="html", fixtures=("r1-string-slugify", "r3-bill-split"), attempts=2,
                      agents=('name = "fixer"\nprovider = "fake"\nscenario = "fix"',
                              'name = "crasher"\nprovider = "fake"\nscenario = "crash"'))
    result = job_cli("job", "run", "--spec", str(spec), "--jobs-dir", str(tmp_path / "jobs"), tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    return only_job_dir(tmp_path / "jobs")


def test_the_page_is_self_contained(job_dir: Path) -> None:
    html = (job_dir / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and " src=" not in html
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"]


@needs_chromium
def test_chromium_renders_the_table_figures_and_links(job_dir: Path) -> None:
    rendered = _chromium("--dump-dom", (job_dir / "report.html").as_uri(), cwd=job_dir.parent)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    dom = rendered.stdout
    data = summary(job_dir)
    rows = re.findall(r'<tr class="row" data-agent="([^"]+)" data-fixture="([^"]+)">', dom)
    assert rows == [(r["agent"], r["fixture"]) for r in data["rows"]] and len(rows) == 4
    assert dom.count('class="agent-row"') == 2
    assert re.search(r'<tr class="failure-row"><td>crasher</td><td class="num">4</td>', dom)
    assert dom.count('<rect class="bar"') == 4
    assert '<svg id="duration-chart"' in dom
    links = re.findall(r'href="(trials/[^"]+/report.json)"', dom)
    assert len(links) == 8 and all((job_dir / link).is_file() for link in links)
    assert "100%" in dom and "0%" in dom
    assert dom.count('class="v-pass">pass<') == 4 and dom.count('class="v-fail">fail<') == 4


@needs_chromium
def test_chromium_screenshot_is_kept_in_the_job_dir(job_dir: Path) -> None:
    shot = job_dir / "report.png"
    rendered = _chromium("--window-size=1100,900", f"--screenshot={shot}", (job_dir / "report.html").as_uri(),
                         cwd=job_dir.parent)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
