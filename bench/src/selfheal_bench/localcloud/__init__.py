"""Run template.yaml's application on this machine: moto plus the glue moto lacks."""

from .cloud import IdleTimeout, LocalCloud

__all__ = ["IdleTimeout", "LocalCloud"]
