"""``cto-harness provider ...``: the admission route on the command line.

Each command parses its options, calls one library function in
``cto_harness.supply_chain``, and prints a short summary (or the JSON record with
``--json``). Every refusal is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from cto_harness import supply_chain as admission
from cto_harness.cli.install import install_command
from cto_harness.core import ConfigError, harness_home, load_config


def _home() -> Path:
    return harness_home(os.environ)


def _catalog() -> dict[str, admission.CatalogEntry]:
    return admission.load_catalog(load_config(os.environ))


def _entry(name: str) -> admission.CatalogEntry:
    return admission.catalog_entry(name, _catalog())


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn library refusals into one-line click errors: exit 2 for an unknown name or bad config, else 1."""
    try:
        yield
    except (admission.UnknownProviderName, ConfigError) as exc:
        raise click.UsageError(str(exc)) from exc
    except admission.AdmissionError as exc:
        raise click.ClickException(str(exc)) from exc


def _emit(obj: BaseModel | list[Any] | dict[str, Any], as_json: bool,
          summary: Callable[[], str]) -> None:
    if as_json:
        if isinstance(obj, BaseModel):
            click.echo(obj.model_dump_json(indent=2))
        else:
            data = [o.model_dump(mode="json") if isinstance(o, BaseModel) else o
                    for o in obj] if isinstance(obj, list) else obj
            click.echo(json.dumps(data, indent=2))
    else:
        click.echo(summary())


def _needs(tools: list[dict[str, Any]]) -> str:
    parts = [t["name"] + (f" >= {t['min_version']}" if t["min_version"] else "") for t in tools]
    return ", ".join(parts) or "-"


json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON record.")


@click.group("provider")
def provider_group() -> None:
    """Discover, build and admit provider executables (supply chain)."""


@provider_group.command("discover")
@click.argument("name")
@click.option("--source", help="Source URL (default: the catalog's).")
@click.option("--pin", help="Full 40-hex commit to check out (default: the catalog's).")
@json_option
def discover_cmd(name: str, source: str | None, pin: str | None, as_json: bool) -> None:
    """Clone NAME's source at its pin into the discovery area (evidence only)."""
    with _refusals():
        entry = _catalog().get(name)
        record = admission.discover(name, home=_home(), environ=os.environ, entry=entry,
                                    source=source, pin=pin)
    _emit(record, as_json, lambda: (
        f"discovered {record.name} {record.source_url} @ {record.pin}\n"
        f"  checkout {record.checkout} (evidence only, never executed)\n"
        f"  record   {Path(record.checkout).parent / 'discovery.json'}"))


@provider_group.command("toolchain")
@click.argument("name")
@click.option("--bootstrap", is_flag=True, help="Install a missing Bun under the harness home.")
@click.option("--remove", is_flag=True, help="Remove the bootstrapped Bun again.")
@json_option
def toolchain_cmd(name: str, bootstrap: bool, remove: bool, as_json: bool) -> None:
    """Report the build tools NAME needs and which are present."""
    if bootstrap and remove:
        raise click.UsageError("--bootstrap and --remove are exclusive")
    home = _home()
    notes: list[str] = []
    with _refusals():
        entry = _entry(name)
        if bootstrap or remove:
            if entry.bun_version is None:
                raise click.ClickException(f"catalog entry {name} names no bun_version to manage")
            if remove:
                notes.append(f"removed {admission.remove_bun(entry.bun_version, home=home)}")
            else:
                report = admission.check_toolchain(entry, home=home, environ=os.environ)
                bun = next((t for t in report.tools if t.name == "bun"), None)
                if bun is not None and bun.ok:
                    notes.append(f"bun already present ({bun.path}); nothing to bootstrap")
                else:
                    rec = admission.bootstrap_bun(entry.bun_version, home=home, environ=os.environ)
                    notes.append(f"bootstrapped bun {rec.version} into {rec.prefix}")
        report = admission.check_toolchain(entry, home=home, environ=os.environ)
        path = admission.write_toolchain_report(report, home)
    _emit(report, as_json, lambda: "\n".join(
        [*notes, f"{name}: {report.summary}", f"  record {path}"]))
    if not report.ok and not remove:
        raise SystemExit(1)


@provider_group.command("build")
@click.argument("name")
@click.option("--source", help="Source URL (default: the latest discovery's, else the catalog's).")
@click.option("--pin", help="Full 40-hex commit (default: the latest discovery's, else the catalog's).")
@click.option("--timeout", "timeout_s", type=float, help="Build timeout in seconds (each build).")
@click.option("--verify-reproducible", is_flag=True,
              help="Build twice from fresh checkouts and compare the digests (exit 1 if they differ).")
@json_option
def build_cmd(name: str, source: str | None, pin: str | None, timeout_s: float | None,
              verify_reproducible: bool, as_json: bool) -> None:
    """Build NAME at its pin in a fresh checkout."""
    run = admission.verify_reproducible if verify_reproducible else admission.build
    with _refusals():
        record = run(_entry(name), home=_home(), environ=os.environ, timeout_s=timeout_s,
                     source=source, pin=pin)
    art = record.artifact
    assert art is not None
    dirty = (f"  build modified tracked files: {', '.join(record.modified_tracked_files)}"
             if record.dirty else "  no tracked files modified")
    lock = (f"\n  lockfile {record.lockfile.path} sha256 {record.lockfile.sha256}"
            if record.lockfile else "")
    repro = record.reproducibility
    verdict = ("" if repro is None else
               f"\n  reproducible {'yes' if repro.reproducible else 'NO'}: {' '.join(repro.digests)}")
    _emit(record, as_json, lambda: (
        f"built {record.name} {record.source_url} @ {record.pin} ({record.pinned_by}) "
        f"in {record.duration_s:.1f}s\n"
        f"  artifact {art.absolute}\n  sha256   {art.sha256}{lock}{verdict}\n{dirty}\n"
        f"  record   {Path(record.build_dir) / 'build.json'}"))
    if repro is not None and not repro.reproducible:
        raise SystemExit(1)


@provider_group.command("admit")
@click.argument("name")
@click.option("--binary", type=click.Path(path_type=Path),
              help="Executable to admit (default: the latest build's artifact).")
@click.option("--expect-sha256", help="Refuse unless the binary has this digest.")
@json_option
def admit_cmd(name: str, binary: Path | None, expect_sha256: str | None, as_json: bool) -> None:
    """Admit NAME's binary into the read-only, content-addressed store."""
    with _refusals():
        record, created = admission.admit(_entry(name), home=_home(), environ=os.environ,
                                          binary=binary, expect_sha256=expect_sha256)
    verb = "admitted" if created else "already admitted"
    _emit(record, as_json, lambda: (
        f"{verb} {record.name} sha256 {record.sha256}\n  stored {record.path}\n"
        f"  source {record.source_url} @ {record.pin}"
        f"{'' if record.built_here else ' (supplied binary: not built here)'}\n"
        f"  reproducible {'not checked' if record.reproducible is None else record.reproducible}"))


def _require_known(name: str) -> None:
    """A usage error unless an adapter, a catalog, a client or an admission knows ``name``."""
    from cto_harness.providers import provider_names

    if admission.install_hint(name, _catalog(), adapters=provider_names()) is None \
            and not admission.list_admissions(_home(), name):
        known = ", ".join(r.name for r in _known_providers())
        raise admission.UnknownProviderName(f"unknown provider {name!r} (known: {known})")


def _known_providers() -> list[admission.ProviderSummary]:
    from cto_harness.providers import provider_names

    return admission.list_providers(_home(), _catalog(), adapters=provider_names())


@provider_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Every provider the harness knows: kind, pin, admission state, whether `run` takes it."""
    with _refusals():
        rows = _known_providers()

    def summary() -> str:
        lines = [f"{'NAME':<16} {'KIND':<9} {'PIN':<22} {'ADMISSION':<30} {'RUN':<4} INSTALL"]
        for r in rows:
            pin = (f"{r.version} {r.pin[:14]}" if r.version and r.pin else r.pin[:22] if r.pin else "-")
            state = f"{r.admission} {r.active_sha256[:16]}" if r.active_sha256 else r.admission
            if r.revoked:
                state += f" ({r.revoked}/{r.admissions} revoked)"
            lines.append(f"{r.name:<16} {r.kind:<9} {pin:<22} {state:<30} {'yes' if r.runnable else 'no':<4} "
                         f"{r.install}")
        return "\n".join(lines)

    _emit(rows, as_json, summary)


@provider_group.command("show")
@click.argument("name")
@json_option
def show_cmd(name: str, as_json: bool) -> None:
    """Catalog entry, discovery, builds and admissions of NAME."""
    with _refusals():
        from cto_harness.providers import provider_names

        view = admission.show_provider(name, home=_home(), catalog=_catalog(), adapters=provider_names())

    def summary() -> str:
        lines = [f"provider {view.name} ({view.kind})", f"  install  {view.install}"]
        if view.catalog:
            c = view.catalog
            lines += [f"  source   {c['source_url']}", f"  pin      {c['pin']}",
                      f"  build    {' '.join(c['install_command'] or []) + ' && ' if c.get('install_command') else ''}"
                      f"{' '.join(c['build_command'])} -> {c['artifact']}",
                      f"  needs    {_needs(c['toolchain'])}",
                      f"  origin   {c['origin']}"]
        lines.append(f"  bin env  {view.bin_env_var}")
        d = view.discovery
        lines.append(f"  discovery {d.pin} at {d.discovered_at}" if d else "  discovery none")
        lines.append(f"  builds   {len(view.builds)} ({sum(b.ok for b in view.builds)} ok)")
        for a in view.admissions:
            state = f"revoked {a.revoked_at}" if a.revoked else "active" if (
                a.sha256 == view.active_sha256) else "admitted"
            synthetic = ", synthetic: a self-check test double, never evidence" if a.synthetic else ""
            lines.append(f"  admission {a.sha256} {state} ({a.admitted_at}{synthetic})")
        if not view.admissions:
            lines.append("  admissions none")
        return "\n".join(lines)

    _emit(view, as_json, summary)


@provider_group.command("verify")
@click.argument("name")
@json_option
def verify_cmd(name: str, as_json: bool) -> None:
    """Re-hash every admitted file of NAME; exit 1 on any mismatch, 2 for a name nobody knows."""
    with _refusals():
        _require_known(name)
        report = admission.verify(_home(), name)

    def summary() -> str:
        lines = [f"{'ok' if e.ok else 'MISMATCH'} {e.sha256}"
                 f"{' (revoked)' if e.revoked else ''}{'' if e.ok else ': ' + (e.error or '')}"
                 for e in report.entries]
        return "\n".join(lines) or f"no admissions of {name}"

    _emit(report, as_json, summary)
    if not report.ok:
        raise SystemExit(1)


@provider_group.command("revoke")
@click.argument("name")
@click.option("--sha256", help="Revoke only this admission (default: every active one).")
@click.option("--reason", help="Why (recorded).")
@json_option
def revoke_cmd(name: str, sha256: str | None, reason: str | None, as_json: bool) -> None:
    """Mark admissions of NAME revoked; the bytes stay as evidence."""
    with _refusals():
        _require_known(name)
        records = admission.revoke(_home(), name, sha256=sha256, reason=reason)
    _emit(records, as_json, lambda: "\n".join(f"revoked {r.name} {r.sha256}" for r in records))


provider_group.add_command(install_command)
