"""Switchboard core: what every Lambda shares. Nothing in here imports boto3 outside ``switchboard.aws``."""

__version__ = "0.1.0"
