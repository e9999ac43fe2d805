"""CLI commands for the evidence signing key."""

from __future__ import annotations

import os

import click

from cto_harness.cli import echo_json


@click.group("keys")
def keys_group() -> None:
    """The Ed25519 key that signs every run's attestation.dsse.json."""


@keys_group.command("show")
@click.option("--json", "as_json", is_flag=True)
def keys_show(as_json: bool) -> None:
    """Print the public key (PEM) for third parties; creates the key pair on first use."""
    from cto_harness.core import harness_home
    from cto_harness.evidence import key_paths, load_or_create_key

    home = harness_home(os.environ)
    try:
        key = load_or_create_key(home)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"signing key unavailable: {exc}") from exc
    pem = key.public_pem().decode()
    if as_json:
        echo_json({"keyid": key.keyid, "public_key_pem": pem, "public_key_path": str(key_paths(home)[1])})
    else:
        click.echo(pem, nl=False)
