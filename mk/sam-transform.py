"""Expand a SAM template to plain CloudFormation, offline, with aws-sam-translator (the library `sam` uses).

Usage: python sam-transform.py TEMPLATE OUTPUT.json

Why: cfn-lint 1.x no longer runs the SAM transform (it checks AWS::Serverless::* against a SAM schema whose event
properties are pass-through), so a bad StartingPosition or MaximumRetryAttempts in a DynamoDB event is not seen.
The expanded template has the real AWS::Lambda::EventSourceMapping, which cfn-lint then checks against the
CloudFormation schema. Translation errors (e.g. an unknown event property) fail here with SAM's own message.
The local CodeUri is replaced by an S3 placeholder as
`sam package` would. No network call: the managed-policy loader is never used, since the template attaches no managed policy.
"""

import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.public.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    """The template must not name managed policies; if SAM asks for them, fail rather than call IAM."""

    def load(self):
        raise SystemExit("sam-transform: the template asks for managed policies; policies/ must hold them all")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    # `sam package` would upload the local CodeUri and put its S3 location here; the translator insists on one.
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://sam-transform-offline/code.zip"
    params = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    try:
        cfn = transform(sam, params, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{source}: SAM transform: {cause.message}", file=sys.stderr)
        return 1
    with open(target, "w", encoding="utf-8") as f:
        json.dump(cfn, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
