"""Discovery clones the source at a full pin, verifies HEAD, and records evidence only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cto_harness.supply_chain import DiscoveryError, PinError, UnknownProviderName, discover, redact_url

from .conftest import Harness


def test_discover_checks_out_the_pin_not_head(harness: Harness) -> None:
    record = discover("toy", home=harness.home, environ=harness.environ, entry=harness.entry())
    assert record.pin == record.head == harness.repo.pin != harness.repo.head
    assert record.executable is False and "evidence only" in record.note
    folder = harness.home / "discovery" / "toy" / harness.repo.pin
    on_disk = json.loads((folder / "discovery.json").read_text())
    assert on_disk["executable"] is False
    assert on_disk["source_url"] == harness.repo.url
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder / "checkout",
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head == harness.repo.pin
    # Rediscovery replaces the clone cleanly.
    again = discover("toy", home=harness.home, environ=harness.environ, entry=harness.entry())
    assert again.pin == record.pin
    assert [p.name for p in folder.parent.iterdir()] == [harness.repo.pin]


@pytest.mark.parametrize("pin", ["main", "HEAD", "abc1234", "g" * 40, "a" * 39])
def test_short_or_symbolic_pins_are_refused(harness: Harness, pin: str) -> None:
    with pytest.raises(PinError, match="full 40-hex"):
        discover("toy", home=harness.home, environ=harness.environ, source=harness.repo.url,
                 pin=pin)
    assert not (harness.home / "discovery").exists()


def test_nonexistent_pin_is_refused_and_leaves_nothing(harness: Harness) -> None:
    with pytest.raises(PinError, match="does not exist"):
        discover("toy", home=harness.home, environ=harness.environ, source=harness.repo.url,
                 pin="0123456789" * 4)
    assert list((harness.home / "discovery" / "toy").iterdir()) == []


def test_unknown_provider_needs_source_and_pin(harness: Harness) -> None:
    with pytest.raises(UnknownProviderName, match="--source"):
        discover("other", home=harness.home, environ=harness.environ)
    record = discover("other", home=harness.home, environ=harness.environ,
                      source=harness.repo.url, pin=harness.repo.head)
    assert record.head == harness.repo.head


def _all_text(root: Path) -> str:
    chunks = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def test_credentials_in_source_url_are_redacted(harness: Harness) -> None:
    secret_url = "https://alice:s3cr3t-t0ken@git.example.invalid/toy.git"
    assert redact_url(secret_url) == "https://***@git.example.invalid/toy.git"
    # Route the credentialed URL to the local repo through git's own URL rewriting.
    environ = {**harness.environ, "GIT_CONFIG_COUNT": "1",
               "GIT_CONFIG_KEY_0": f"url.{harness.repo.url}.insteadOf",
               "GIT_CONFIG_VALUE_0": secret_url}
    record = discover("toy", home=harness.home, environ=environ, source=secret_url,
                      pin=harness.repo.pin)
    assert record.source_url == "https://***@git.example.invalid/toy.git"
    everything = _all_text(harness.home)
    assert "s3cr3t-t0ken" not in everything and "alice" not in everything
    # Error messages are redacted too.
    with pytest.raises(PinError) as err:
        discover("toy", home=harness.home, environ=environ, source=secret_url, pin="1" * 40)
    assert "s3cr3t-t0ken" not in str(err.value) and "***@git.example.invalid" in str(err.value)


def test_unreachable_credentialed_source_error_is_redacted(harness: Harness) -> None:
    url = "https://bob:hunter2-token@127.0.0.1:9/none.git"
    with pytest.raises(DiscoveryError) as err:
        discover("toy", home=harness.home, environ=harness.environ, source=url,
                 pin=harness.repo.pin)
    assert "hunter2-token" not in str(err.value)
    assert "hunter2-token" not in _all_text(harness.home)
