"""The project benchmark: ``python -m bench`` (see run.py)."""
