"""The fake provider's agent: a real child process with scripted, deterministic behaviour.

Run as a script (stdlib only, never imports cto_harness). Reads ``--task task.json``,
acts on the current directory (the workspace), and ends with an AGENT_RESULT block the
way Case's agents do. Scenarios exercise each fail-closed path of the runner.

It runs on every fake-lane trial, so it imports little (``python -I -S``, no argparse,
pathlib or subprocess unless a scenario needs them): its start-up is part of the bench.
"""

from __future__ import annotations

import os
import sys
import time

try:  # json's C half: the json package imports re, enum and functools (~10 ms of every fake run)
    import _json
except ImportError:  # pragma: no cover - an interpreter without it
    _json = None  # type: ignore[assignment]

HANG_CHILD = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "while True: time.sleep(1)\n"
)


class _Decoding:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder`` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


def loads(text: str) -> object:
    """``json.loads`` for a whole document (what the C scanner does under it)."""
    if _json is None:
        import json

        return json.loads(text)
    text = text.strip()
    try:
        value, end = _json.make_scanner(_Decoding())(text, 0)  # type: ignore[arg-type]  # a JSONDecoder's fields
    except StopIteration:
        raise ValueError("task: not JSON") from None
    if end != len(text):
        raise ValueError("task: extra data after the JSON value")
    return value


def dumps(value: object) -> str:
    """``json.dumps(value, sort_keys=True)``, byte for byte (its C encoder)."""
    if _json is None:
        import json

        return json.dumps(value, sort_keys=True)

    def unserializable(obj: object) -> object:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    encode = _json.make_encoder({}, unserializable, _json.encode_basestring_ascii, None, ": ", ", ",
                                True, False, True)
    return "".join(encode(value, 0))


def result_block(status: str, summary: str, **extra: object) -> str:
    payload = dumps({"status": status, "summary": summary, **extra})
    return f"<<<AGENT_RESULT {payload} AGENT_RESULT>>>"


def apply_solution(patch: str) -> None:
    pid = os.posix_spawnp("git", ["git", "apply", "--whitespace=nowarn", patch], dict(os.environ))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        raise SystemExit(f"fake agent: git apply exited {code}")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def scenario_fix(task: dict[str, object]) -> int:
    say("fake agent: applying the fixture's reference solution")
    apply_solution(str(task["solution_patch"]))
    say(result_block("completed", "applied the reference solution"))
    return 0


def scenario_noop(task: dict[str, object]) -> int:
    say("fake agent: doing nothing")
    say(result_block("completed", "nothing to do"))
    return 0


def scenario_sleep(task: dict[str, object]) -> int:
    say("fake agent: sleeping")
    time.sleep(float(str(task.get("sleep_s", 3600))))
    return 0


def scenario_hang_with_children(task: dict[str, object]) -> int:
    import signal
    import subprocess

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = []
    for _ in range(2):
        child = subprocess.Popen([sys.executable, "-c", HANG_CHILD], start_new_session=True,
                                 stdin=subprocess.DEVNULL)
        pids.append(child.pid)
    say(f"fake agent: started grandchildren in new sessions ignoring SIGTERM: {pids}")
    while True:
        time.sleep(1)


def scenario_crash(task: dict[str, object]) -> int:
    sys.stderr.write("fake agent: simulated crash (Traceback would be here)\n")
    return 3


def scenario_protocol_error(task: dict[str, object]) -> int:
    apply_solution(str(task["solution_patch"]))
    say("fake agent: fixed it, but I will not say so in the protocol")
    return 0


def scenario_huge_output(task: dict[str, object]) -> int:
    apply_solution(str(task["solution_patch"]))
    say(result_block("completed", "applied the reference solution, then talked a lot"))
    chunk = b"x" * 1023 + b"\n"
    out = sys.stdout.buffer
    for _ in range(int(str(task.get("huge_mib", 300))) * 1024):
        out.write(chunk)
    out.flush()
    return 0


def scenario_edit_tests(task: dict[str, object]) -> int:
    grading = [str(p) for p in task["grading_tests"]]  # type: ignore[attr-defined]
    for rel in grading:
        if rel.endswith(".py"):
            with open(rel, "w", encoding="utf-8") as test:
                test.write("def test_nothing():\n    assert True\n")
    with open("conftest.py", "w", encoding="utf-8") as conftest:
        conftest.write(
            "import pytest\n\n\ndef pytest_collection_modifyitems(items):\n"
            "    for item in items:\n        item.add_marker(pytest.mark.skip(reason='agent'))\n"
        )
    say(f"fake agent: weakened the grading tests {grading}, added a skipping conftest.py, fixed nothing")
    say(result_block("completed", "tests pass now"))
    return 0


def scenario_binary_output(task: dict[str, object]) -> int:
    apply_solution(str(task["solution_patch"]))
    noise = bytes(range(256)) * 64 + b"\xff\xfe\x80\xc3\x28\n"
    sys.stdout.buffer.write(noise)
    sys.stderr.buffer.write(noise)
    sys.stdout.buffer.flush()
    say(result_block("completed", "applied the reference solution amid binary noise"))
    return 0


def scenario_fork_and_exit(task: dict[str, object]) -> int:
    import subprocess

    apply_solution(str(task["solution_patch"]))
    daemon = subprocess.Popen([sys.executable, "-c", HANG_CHILD], start_new_session=True,
                              stdin=subprocess.DEVNULL)
    say(f"fake agent: left a daemon behind (pid {daemon.pid}) and exited")
    say(result_block("completed", "applied the reference solution"))
    return 0


SCENARIOS = {
    "fix": scenario_fix,
    "noop": scenario_noop,
    "sleep": scenario_sleep,
    "hang-with-children": scenario_hang_with_children,
    "crash": scenario_crash,
    "protocol-error": scenario_protocol_error,
    "huge-output": scenario_huge_output,
    "edit-tests": scenario_edit_tests,
    "binary-output": scenario_binary_output,
    "fork-and-exit": scenario_fork_and_exit,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--task":
        sys.stderr.write("usage: _agent.py --task TASK_JSON\n")
        return 2
    with open(args[1], encoding="utf-8") as task_file:
        task = loads(task_file.read())
    assert isinstance(task, dict)
    scenario = str(task["scenario"])
    say(f"fake agent pid {os.getpid()}: scenario {scenario} on {task['fixture_id']}")
    return SCENARIOS[scenario](task)


if __name__ == "__main__":
    sys.exit(main())
