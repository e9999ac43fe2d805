"""What Case reads for one run: its data dir, the task pair, pi's models.json, a home.

Case takes its model from ``$CASE_DATA_DIR/config.json``; without ``models.default`` it
silently uses its built-in default (``anthropic/claude-sonnet-4-6``: the seed's
CTO-WORK-018 trap), so ``config.json`` is written from the admitted model only. Case
resolves the task's ``repo`` through ``projects.json``, which names only the run's
workspace: Case never learns a path outside the run directory.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from cto_harness.fixtures import Fixture, test_argv

PROFILES = ("standard", "tiny")
PRISTINE_TASK_FILE = "case-task.pristine.json"
"""Case rewrites the task JSON in place; the harness keeps what it handed over here (backend/)."""
DEFAULT_MODEL_API = "openai-completions"
NO_API_KEY = "cto-harness-no-key"
"""pi needs some apiKey for a custom endpoint; a keyless local proxy gets this placeholder."""
PI_KEY_ENV = {
    "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "azure-openai-responses": "AZURE_OPENAI_API_KEY",
    "google": "GEMINI_API_KEY", "groq": "GROQ_API_KEY", "cerebras": "CEREBRAS_API_KEY", "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY", "vercel-ai-gateway": "AI_GATEWAY_API_KEY", "zai": "ZAI_API_KEY",
    "mistral": "MISTRAL_API_KEY", "minimax": "MINIMAX_API_KEY", "minimax-cn": "MINIMAX_CN_API_KEY",
    "huggingface": "HF_TOKEN", "opencode": "OPENCODE_API_KEY", "kimi-coding": "KIMI_API_KEY",
}
"""The variable pi-ai reads a model provider's key from (its ``getEnvApiKey``). Case calls
pi-ai's ``streamSimple`` without an ``apiKey``, so this variable, not the ``apiKey`` of
``models.json``, is what a Case agent authenticates with."""
_GITCONFIG = (
    "# Written by cto-harness: Case commits the agent's work in the workspace.\n"
    "[user]\n\tname = Case agent (cto-harness)\n\temail = case-agent@cto-harness.invalid\n"
    "[init]\n\tdefaultBranch = main\n"
)


def task_slug(fixture_id: str) -> str:
    """A Case task id derived from the fixture id (lowercase, hyphens)."""
    return re.sub(r"[^a-z0-9]+", "-", fixture_id.lower()).strip("-") or "task"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def case_config(model_provider: str, model: str) -> dict[str, Any]:
    """``config.json``: exactly the projects file and the admitted ``models.default``."""
    return {"version": 1, "projects": "./projects.json",
            "models": {"default": {"provider": model_provider, "model": model}}}


def write_case_data(data_dir: Path, fixture: Fixture, workspace: Path, *, model_provider: str,
                    model: str) -> None:
    """Write ``CASE_DATA_DIR`` with ``config.json`` and ``projects.json``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_json(data_dir / "config.json", case_config(model_provider, model))
    _write_json(data_dir / "projects.json", {"repos": [{
        "name": fixture.id,
        "path": str(workspace.resolve()),
        "remote": "",
        "description": fixture.title,
        "language": "python",
        "packageManager": "pip",
        "commands": {"setup": "true", "test": shlex.join(test_argv(fixture))},
    }]})


def task_markdown(fixture: Fixture) -> str:
    """The fixture instructions as a Case task: title, objective, acceptance."""
    test_command = shlex.join(test_argv(fixture))
    tests = ", ".join(f"`{t}`" for t in fixture.grading_tests)
    return (
        f"# {fixture.title}\n\n"
        f"## Objective\n\n{fixture.instructions.strip()}\n\n"
        "## Acceptance Criteria\n\n"
        f"- [ ] The fixture's tests pass: `{test_command}`\n"
        f"- [ ] The tests ({tests}) are not edited; the harness grades with pristine copies.\n"
    )


def task_json(slug: str, fixture: Fixture, *, profile: str, created: str) -> dict[str, Any]:
    """The task in Case's schema, unattended, for the repo named in ``projects.json``."""
    return {
        "id": slug,
        "status": "active",
        "created": created,
        "repo": fixture.id,
        "issueType": "freeform",
        "mode": "unattended",
        "profile": profile,
        "agents": {},
        "tested": False,
        "manualTested": False,
        "prUrl": None,
        "prNumber": None,
    }


def write_task_pair(task_dir: Path, backend_dir: Path, fixture: Fixture, *, profile: str,
                    created: str) -> Path:
    """Write ``<slug>.md`` and ``<slug>.task.json`` (plus a pristine copy); return the JSON path."""
    slug = task_slug(fixture.id)
    (task_dir / f"{slug}.md").write_text(task_markdown(fixture), encoding="utf-8")
    data = task_json(slug, fixture, profile=profile, created=created)
    path = task_dir / f"{slug}.task.json"
    _write_json(path, data)
    _write_json(backend_dir / PRISTINE_TASK_FILE, data)
    return path


def write_pi_models(pi_dir: Path, *, model_provider: str, model: str, base_url: str, api: str,
                    api_key: str) -> Path:
    """Declare the operator-admitted endpoint in ``$PI_CODING_AGENT_DIR/models.json``.

    ``api_key`` is the name of a passed-through variable (pi resolves it from the
    environment) or a placeholder; a key value is never written to disk.
    """
    pi_dir.mkdir(parents=True, exist_ok=True)
    path = pi_dir / "models.json"
    _write_json(path, {"providers": {model_provider: {
        "baseUrl": base_url,
        "api": api,
        "apiKey": api_key,
        "models": [{
            "id": model,
            "name": model,
            "reasoning": False,
            "input": ["text"],
            "contextWindow": 128000,
            "maxTokens": 16384,
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        }],
    }}})
    return path


def write_home(home: Path) -> None:
    """An isolated HOME whose only content is a git identity for Case's commits."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(_GITCONFIG, encoding="utf-8")
