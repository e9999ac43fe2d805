"""cto-harness: run coding-agent providers on fixture tasks and trust only evidence."""

__version__ = "0.1.0"
__all__ = ["__version__"]
