"""``cto-harness model-server``: run the scripted model in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from cto_harness.model_server import NonLoopbackHostError, ScriptedModelServer, ScriptError, load_script


@click.command("model-server")
@click.option(
    "--script",
    "script_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model script (TOML) to follow.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), show_default=True, help="0 picks a free port.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append every exchange as JSONL here (credentials redacted).",
)
def model_server_command(script_path: Path, host: str, port: int, log_path: Path | None) -> None:
    """Serve a scripted model on loopback until interrupted.

    The first line on stdout is the base URL (http://127.0.0.1:PORT); OpenAI clients use
    it with /v1 appended, Anthropic clients as is.
    """
    try:
        script = load_script(script_path)
    except ScriptError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = ScriptedModelServer(script, host=host, port=port, log_path=log_path)
    except NonLoopbackHostError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        with server:
            click.echo(server.base_url)
            sys.stdout.flush()
            click.echo(
                f"scripted model {script.model!r} ({len(script.steps)} steps) listening on "
                f"{server.base_url}; Ctrl-C to stop",
                err=True,
            )
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
