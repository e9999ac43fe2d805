"""Real coding-agent clients: the pinned catalog, installation and admission by digest."""

from cto_harness.clients._catalog import ClientCatalogError, ClientIdentify, ClientSpec, client_spec, load_clients
from cto_harness.clients._install import (
    InstallError,
    InstallRecord,
    client_prefix,
    install_client,
    installed_record,
)
from cto_harness.clients._tree import read_launcher, tree_sha256, verify_launcher

__all__ = [
    "ClientCatalogError",
    "ClientIdentify",
    "ClientSpec",
    "InstallError",
    "InstallRecord",
    "client_prefix",
    "client_spec",
    "install_client",
    "installed_record",
    "load_clients",
    "read_launcher",
    "tree_sha256",
    "verify_launcher",
]
