"""The AWS side of the ports in :mod:`switchboard.ports`: the only place in the core that imports boto3."""
