"""The version of the steerlm-integrations distribution, shared by its three packages."""

__version__ = "0.2.0"
