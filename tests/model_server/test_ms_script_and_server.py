"""Script validation, the JSONL log, loopback-only binding and the CLI command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from ms_helpers import CLAUDE_TOOLS, post, request, script

from cto_harness.cli.model_server import model_server_command
from cto_harness.model_server import (
    NonLoopbackHostError,
    ReplaceStep,
    ScriptedModelServer,
    ScriptError,
    load_script,
    parse_script,
)

GOOD = """
model = "scripted-9"
[[steps]]
action = "read"
path = "strings.py"
[[steps]]
action = "replace"
path = "strings.py"
old = "a"
new = "b"
[[steps]]
action = "run"
command = "python -m pytest -q"
[[steps]]
action = "finish"
text = "Fixed slugify."
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model-script.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_load_good_script(tmp_path: Path) -> None:
    loaded = load_script(_write(tmp_path, GOOD))
    assert loaded.model == "scripted-9"
    assert [s.action for s in loaded.steps] == ["read", "replace", "run", "finish"]
    assert [s.action for s in loaded.actions] == ["read", "replace", "run"]
    assert loaded.finish_text == "Fixed slugify."
    assert isinstance(loaded.steps[1], ReplaceStep)
    assert parse_script({"steps": []}).finish_text == "Done."


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"action": "frob", "path": "x"}], "steps[0]: unknown action 'frob' (expected one of: read, replace"),
        ([{"path": "x"}], "steps[0]: missing field 'action'"),
        (
            [{"action": "read", "path": "x"}, {"action": "replace", "path": "x", "new": "y"}],
            "steps[1] (replace): missing field 'old'",
        ),
        ([{"action": "run"}], "steps[0] (run): missing field 'command'"),
        ([{"action": "run", "command": "ls", "cwd": "/"}], "steps[0] (run): unknown field 'cwd'"),
        ([{"action": "finish", "text": "x"}, {"action": "run", "command": "ls"}], "'finish' must be the last step"),
        ([{"action": "read", "path": ""}], "steps[0] (read): path: String should have at least 1 character"),
        ([{"action": "replace", "path": "x", "old": "a", "new": 3}], "steps[0] (replace): new: Input should be"),
        (["read"], "steps[0]: a step must be a table"),
    ],
)
def test_script_errors_are_one_line(steps: list[object], expected: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_script({"steps": steps}, "s.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("s.toml: ")
    assert expected in message


def test_script_top_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"^s.toml: unknown field 'modle'$"):
        parse_script({"modle": "x"}, "s.toml")
    with pytest.raises(ScriptError, match=r"mode: Input should be 'auto', 'tools' or 'text-actions'"):
        parse_script({"mode": "chatty"}, "s.toml")
    with pytest.raises(ScriptError, match=r"'steps' must be an array of tables"):
        parse_script({"steps": {"action": "run"}}, "s.toml")
    bad_toml = _write(tmp_path, "steps = [\n")
    with pytest.raises(ScriptError, match="invalid TOML") as info:
        load_script(bad_toml)
    assert "\n" not in str(info.value)
    with pytest.raises(ScriptError, match="cannot read script"):
        load_script(tmp_path / "missing.toml")


def test_log_is_jsonl_with_redacted_credentials(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "model.jsonl"
    secret = "sk-ant-SECRET-123"
    with ScriptedModelServer(script(), log_path=log) as srv:
        body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "tools": CLAUDE_TOOLS}
        headers = {"x-api-key": secret, "Authorization": f"Bearer {secret}", "api-key": secret, "X-Trace": "keep"}
        assert post(srv.base_url, "/v1/messages", body, headers).status == 200
        assert request(srv.base_url, "GET", "/v1/models", headers={"Authorization": f"Bearer {secret}"}).status == 200
        in_memory = list(srv.requests)
    text = log.read_text()
    assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries == in_memory
    first = entries[0]
    assert first["seq"] == 1 and first["method"] == "POST" and first["path"] == "/v1/messages"
    assert first["protocol"] == "anthropic-messages" and first["step"] == 0 and first["action"] == "read"
    assert first["headers"]["x-api-key"] == "[redacted]"
    assert first["headers"]["authorization"] == "[redacted]"
    assert first["headers"]["api-key"] == "[redacted]"
    assert first["headers"]["x-trace"] == "keep"
    assert first["request"] == body
    assert first["response"]["content"][0]["name"] == "Read"
    assert first["status"] == 200
    assert entries[1]["protocol"] == "models" and entries[1]["headers"]["authorization"] == "[redacted]"


def test_streamed_exchange_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "model.jsonl"
    with ScriptedModelServer(script(), log_path=log) as srv:
        body = {"model": "m", "stream": True, "input": "hi", "tools": []}
        post(srv.base_url, "/v1/responses", body)
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["stream"] is True and entry["events"] > 3
    assert entry["response"]["status"] == "completed"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "10.0.0.1", "example.com", "::"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(NonLoopbackHostError, match="non-loopback"):
        ScriptedModelServer(script(), host=host)


def test_loopback_variants_serve() -> None:
    with ScriptedModelServer(script(), host="localhost") as srv:
        assert request(srv.base_url, "HEAD", "/").status == 200
        assert srv.openai_base_url == srv.base_url + "/v1"
    with ScriptedModelServer(script(), host="127.0.0.2") as srv:
        assert srv.base_url.startswith("http://127.0.0.2:")
    try:
        srv6 = ScriptedModelServer(script(), host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert srv6.base_url.startswith("http://[::1]:")
        assert request(srv6.base_url, "GET", "/v1/models").json()["data"][0]["id"] == "scripted-test"
    finally:
        srv6.stop()


def test_not_running_has_no_url() -> None:
    server = ScriptedModelServer(script())
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    server.stop()  # idempotent


def test_cli_rejects_bad_script_and_host(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = _write(tmp_path, '[[steps]]\naction = "replace"\npath = "x"\n')
    result = runner.invoke(model_server_command, ["--script", str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: {bad}: steps[0] (replace): missing field 'old'"]
    good = _write(tmp_path, GOOD)
    result = runner.invoke(model_server_command, ["--script", str(good), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "non-loopback" in result.output


def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    log = tmp_path / "cli.jsonl"
    code = "from cto_harness.cli.model_server import model_server_command as c; c()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--script", str(path), "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        models = request(base_url, "GET", "/v1/models").json()
        assert models["data"][0]["id"] == "scripted-9"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert json.loads(log.read_text().splitlines()[0])["protocol"] == "models"


def test_cli_reports_a_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            model_server_command, ["--script", str(_write(tmp_path, GOOD)), "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
