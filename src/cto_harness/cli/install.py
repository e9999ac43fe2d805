"""``cto-harness provider install NAME``: install a pinned real client and admit it."""

from __future__ import annotations

import os

import click


@click.command("install")
@click.argument("name")
@click.option("--force", is_flag=True, help="Reinstall even when a verified install exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the install record as JSON.")
def install_command(name: str, force: bool, as_json: bool) -> None:
    """Install the pinned version of client NAME and admit its executable by digest.

    NAME is one of claude-code, codex, mini-swe-agent, pi. npm clients go to
    <home>/providers/NAME/VERSION/ (npm --prefix), Python clients to a virtualenv
    there; the registry integrity is checked against the pin and recorded.
    """
    from cto_harness.core import harness_home
    from cto_harness.supply_chain import ClientCatalogError, InstallError, install_client

    environ = dict(os.environ)
    try:
        record = install_client(name, home=harness_home(environ), environ=environ, force=force,
                                echo=lambda m: click.echo(m, err=True))
    except ClientCatalogError as exc:
        raise click.UsageError(_not_installable(name) or str(exc)) from exc
    except InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(record.model_dump_json(indent=2))
        return
    click.echo(f"{record.name} {record.version}: {record.package} ({record.kind}, integrity {record.integrity})")
    click.echo(f"executable: {record.executable}")
    click.echo(f"admitted:   sha256 {record.sha256} -> {record.admitted_path}")


def _not_installable(name: str) -> str | None:
    """Why NAME, a provider the harness knows, is not a registry client (as `provider list` says)."""
    from cto_harness.core import load_config
    from cto_harness.providers import provider_names
    from cto_harness.supply_chain import install_hint, load_catalog

    hint = install_hint(name, load_catalog(load_config(os.environ)), adapters=provider_names())
    return f"{name} is not a registry client; {hint}" if hint else None


if __name__ == "__main__":  # `python -m cto_harness.cli.install NAME` (CI, before the CLI registers it)
    install_command()
