"""The Powertools Logger and Metrics every function shares.

The correlation id starts at the edge (API Gateway's request id), travels in the envelope, and is
set on the logger for each record a stage handles, so one customer message can be followed from the
webhook to the CRM call in the logs.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "switchboard"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Switchboard"))
