"""Translate a SAM template into the CloudFormation that `sam deploy` would create, as AWS's transform does.

Run by the SAM venv's Python (samtranslator and SAM CLI's YAML reader live there, not in .venv):

    .venv-sam/bin/python tests/deploy/_translate.py TEMPLATE [Key=Value ...] > translated.json

Parameters not given take their defaults. The translation needs no AWS call: the template names no
managed policy by name (SAM adds the few it needs by ARN).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from samcli.yamlhelper import yaml_parse
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = yaml_parse(Path(argv[0]).read_text(encoding="utf-8"))
    parameters = dict(pair.split("=", 1) for pair in argv[1:])
    translated = Translator(managed_policy_map={}, sam_parser=Parser()).translate(
        template, parameter_values=parameters, get_managed_policy_map=lambda: {}
    )
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
