"""Git operations for discovery and build checkouts, with credentials kept out of evidence.

Pins are full 40-hex commit ids: a branch or tag moves and a short SHA can become
ambiguous, so neither can identify the bytes that were built. Every git command runs
non-interactively with credential helpers disabled, and every message that could
echo the source URL is scrubbed of its userinfo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cto_harness.proc import SpawnError, git_config_args, run_captured
from cto_harness.proc import git_env as proc_git_env
from cto_harness.supply_chain._errors import DiscoveryError, PinError

FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
GIT_TIMEOUT_S = 900.0


def validate_pin(pin: str) -> str:
    """Return the normalised pin, or refuse anything that is not a full commit id."""
    value = pin.strip().lower()
    if not FULL_SHA_RE.match(value):
        raise PinError(
            f"pin {pin!r} is not a full 40-hex commit SHA; branch names, tags and short "
            "SHAs are refused because they do not identify fixed bytes"
        )
    return value


def url_secrets(url: str) -> list[str]:
    """The userinfo parts of a URL (user, password, token) that must never be recorded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if "@" not in parts.netloc or not parts.scheme:
        return []
    userinfo = parts.netloc.rsplit("@", 1)[0]
    secrets = [userinfo, *userinfo.split(":", 1)]
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://***@host/x``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc or not parts.scheme:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment (proxies, credentials for a fetch), made non-interactive and locale-stable."""
    return proc_git_env(inherit=environ)


@dataclass(frozen=True)
class GitResult:
    returncode: int | None
    stdout: str
    stderr: str


def run_git(
    args: Sequence[str],
    *,
    environ: Mapping[str, str],
    cwd: Path | None = None,
    secrets: Sequence[str] = (),
    timeout_s: float = GIT_TIMEOUT_S,
    check: bool = True,
) -> GitResult:
    argv = ["git", "--no-pager", *git_config_args(transport=True), *args]
    try:
        done = run_captured(argv, cwd=cwd or Path.cwd(), env=git_env(environ), timeout_s=timeout_s)
    except SpawnError as exc:
        raise DiscoveryError("git is not installed (not found on PATH)") from exc
    if done.timed_out:
        shown = scrub(" ".join(args), secrets)
        raise DiscoveryError(f"git {shown} timed out after {timeout_s:g}s")
    proc = GitResult(done.returncode, done.text("stdout"), done.text("stderr"))
    if check and proc.returncode != 0:
        shown = scrub(" ".join(args), secrets)
        detail = scrub((proc.stderr or proc.stdout).strip(), secrets).splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise DiscoveryError(f"git {shown} failed: {last}")
    return proc


def clone_at_pin(
    source: str,
    dest: Path,
    pin: str,
    *,
    environ: Mapping[str, str],
    shown_source: str,
    secrets: Sequence[str] = (),
) -> str:
    """Clone ``source`` into ``dest`` and check out ``pin`` detached; return verified HEAD.

    The origin URL left in the clone is ``shown_source`` (credentials removed).
    """
    run_git(["clone", "--quiet", "--no-checkout", "--", source, str(dest)],
            environ=environ, secrets=secrets)
    if not has_commit(dest, pin, environ=environ):
        # The pin may not be on a branch head; ask the remote for it by id.
        run_git(["fetch", "--quiet", "origin", pin], environ=environ, cwd=dest,
                secrets=secrets, check=False)
    if shown_source != source:
        run_git(["remote", "set-url", "origin", shown_source], environ=environ, cwd=dest,
                secrets=secrets)
    if not has_commit(dest, pin, environ=environ):
        raise PinError(f"pin {pin} does not exist in {shown_source}")
    run_git(["checkout", "--quiet", "--detach", pin], environ=environ, cwd=dest, secrets=secrets)
    head = rev_parse(dest, "HEAD", environ=environ)
    if head != pin:
        raise PinError(f"checkout of {pin} produced HEAD {head}; refusing")
    return head


def has_commit(repo: Path, pin: str, *, environ: Mapping[str, str]) -> bool:
    proc = run_git(["cat-file", "-e", f"{pin}^{{commit}}"], environ=environ, cwd=repo, check=False)
    return proc.returncode == 0


def rev_parse(repo: Path, rev: str, *, environ: Mapping[str, str]) -> str:
    return run_git(["rev-parse", "--verify", rev], environ=environ, cwd=repo).stdout.strip()


def commit_meta(repo: Path, *, environ: Mapping[str, str]) -> tuple[str, str]:
    """(committer date ISO, subject) of HEAD."""
    out = run_git(["log", "-1", "--format=%cI%x00%s"], environ=environ, cwd=repo).stdout
    date, _, subject = out.strip().partition("\x00")
    return date, subject


def status(repo: Path, *, environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(tracked files changed, untracked files) in the work tree."""
    out = run_git(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all"], environ=environ, cwd=repo
    ).stdout
    tracked: list[str] = []
    untracked: list[str] = []
    fields = out.split("\x00")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
            continue
        if code == "!!":
            continue
        tracked.append(path)
        if "R" in code or "C" in code:
            i += 1  # the rename/copy source follows as its own field
    return sorted(tracked), sorted(untracked)


def git_version(environ: Mapping[str, str]) -> str:
    return run_git(["--version"], environ=environ).stdout.strip()


def commit_time(repo: Path, *, environ: Mapping[str, str]) -> int:
    """HEAD's committer time (Unix seconds): the build's ``SOURCE_DATE_EPOCH``."""
    return int(run_git(["log", "-1", "--format=%ct"], environ=environ, cwd=repo).stdout.strip())
