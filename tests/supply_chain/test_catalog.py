"""The built-in catalog records the seed's Case facts; operator entries are validated."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cto_harness.core._config import load_config
from cto_harness.supply_chain import CatalogEntry, CatalogError, load_catalog


def _catalog_from(tmp_path: Path, toml: str) -> dict[str, CatalogEntry]:
    cfg = tmp_path / "cto-harness.toml"
    cfg.write_text(toml)
    return load_catalog(load_config({"CTO_HARNESS_CONFIG": str(cfg)}))


def test_builtin_case_entry_records_the_seed_facts() -> None:
    case = load_catalog()["case"]
    assert case.source_url == "https://github.com/workos/case.git"
    assert case.pin == "7959ac917cdeb0983b4aaa20bb9f42021747fed8"
    assert [(t.name, t.min_version) for t in case.toolchain] == [("node", "20"), ("bun", None)]
    assert case.build_command == ["bun", "run", "build:binary"]
    assert case.artifact == "dist/ca"
    assert case.bin_env_var == "CTO_HARNESS_CASE_BIN"
    assert case.bun_version
    assert [k.sha256 for k in case.known_digests] == [
        "9811f870af2f85616e359d42ba70566c9af08ca20d8660456929a56ec761513f"
    ]
    assert case.origin == "builtin"


def test_case_identify_patterns_accept_case_help_and_reject_openssl_ca() -> None:
    import re

    patterns = load_catalog()["case"].identify.patterns
    case_help = ("Usage: ca <command> [options]\n\nCommands:\n  run  Run a task\n\n"
                 "Run `ca <command> --help` for command-specific options.\n")
    openssl = "usage: ca args\n -verbose        - Talk alot while doing things\n"
    assert all(re.search(p, case_help) for p in patterns)
    assert not all(re.search(p, openssl) for p in patterns)


def test_operator_override_and_addition(tmp_path: Path) -> None:
    catalog = _catalog_from(tmp_path, (
        '[catalog.case]\npin = "' + "a" * 40 + '"\n'
        '[catalog.mine]\nsource_url = "file:///x"\npin = "' + "b" * 40 + '"\n'
        'build_command = ["make"]\nartifact = "out/mine"\n'
        '[catalog.mine.identify]\npatterns = ["mine"]\n'
    ))
    assert catalog["case"].pin == "a" * 40
    assert catalog["case"].source_url == "https://github.com/workos/case.git"
    assert catalog["case"].origin.startswith("builtin+config:")
    assert catalog["mine"].artifact == "out/mine"
    assert catalog["mine"].bin_env_var == "CTO_HARNESS_MINE_BIN"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[catalog.case]\npin = "main"\n', "catalog entry 'case'"),
        ('[catalog.case]\npin = "7959ac9"\n', "pin"),
        ('[catalog.case]\nartifact = "../escape"\n', "artifact"),
        ('[catalog.case]\nbuild_comand = ["x"]\n', "build_comand"),
        ('[catalog.case.identify]\npatterns = ["("]\n', "regex"),
        ('[catalog.new]\nsource_url = "file:///x"\n', "catalog entry 'new'"),
        ('[catalog."Bad Name"]\nsource_url = "x"\n', "name"),
    ],
)
def test_invalid_operator_entries_are_clear_errors(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(CatalogError) as err:
        _catalog_from(tmp_path, toml)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_registry_pins_are_integrity_digests_not_commits() -> None:
    import base64

    from cto_harness.supply_chain._catalog import registry_digest
    from cto_harness.supply_chain._store import provenance_statement

    raw = bytes(range(64))
    sri = "sha512-" + base64.b64encode(raw).decode()
    assert registry_digest(sri) == {"sha512": raw.hex()}
    assert registry_digest("sha256:" + "ab" * 32) == {"sha256": "ab" * 32}
    with pytest.raises(ValueError):
        registry_digest("main")
    statement = provenance_statement(subject_name="claude", digest="0" * 64, source_url="npm:pkg@1.0.0",
                                     pin=sri, build=None, admitted=datetime.now(UTC), pin_kind="registry")
    dependency = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert dependency["digest"] == {"sha512": raw.hex()} and "gitCommit" not in dependency["digest"]
