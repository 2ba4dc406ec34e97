#!/usr/bin/env python3
"""The seed's own Python Lambda, as the baseline of `make bench` (docs/PERFORMANCE.md).

The function is extracted at run time from the seed text (a Markdown journal) into a temporary folder
that is deleted on exit; it is never copied into the repository. Two lines are patched in that temporary
copy and nothing else: the hard-coded region and endpoint, which are read from BENCH_SEED_REGION and
BENCH_SEED_ENDPOINT instead (the bench points them at DynamoDB Local, through its delay proxy).

  seed_baseline.py --seed-file SEED init    import the function (boto3 and its resource), then print
                                            "ready KIB" (KIB: the interpreter's peak RSS so far) and exit
  seed_baseline.py --seed-file SEED serve   print {"python", "boto3", "function_bytes"}, then answer one
                                            JSON request per line on stdin:
      {"event": PATH, "variant": "first"|"all"}  -> {"seconds": s, "requests": {op: n},
                                                      "capacity": {"read_units", "write_units", "unreported"},
                                                      "error": null|str}
      {"rss": true}                              -> {"max_rss_kb": n}

"first" calls lambda_handler once with the whole event, as Lambda would (the seed reads Records[0] only);
"all" calls it once per record, so the baseline does the work of the whole batch.
Requests are counted by operation with botocore's before-send event, which fires once per HTTP attempt.
Capacity: a before-parameter-build hook adds ReturnConsumedCapacity=TOTAL to every request's parameters
(the seed's code text is not changed), and an after-call hook sums each response's ConsumedCapacity
(ReadCapacityUnits / WriteCapacityUnits, or CapacityUnits by operation when only that is given;
a response without it counts as unreported).
The seed prints rows and message text; that output goes to /dev/null (it is still formatted and written).
"""

import argparse
import importlib.util
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter

PATCHES = [
    ("region_name='ap-south-1'", "region_name=os.environ['BENCH_SEED_REGION']"),
    (
        'endpoint_url="http://dynamodb.ap-south-1.amazonaws.com"',
        "endpoint_url=os.environ['BENCH_SEED_ENDPOINT']",
    ),
]


def extract(seed_text):
    """The fenced Python block that defines lambda_handler: (patched source, size as written)."""
    blocks = re.findall(r"^```\.?py[^\n]*\n(.*?)^```", seed_text, flags=re.S | re.M)
    handlers = [b for b in blocks if "def lambda_handler" in b]
    if len(handlers) != 1:
        sys.exit(f"seed_baseline: expected one Python block with lambda_handler, found {len(handlers)}")
    source = handlers[0]
    original_bytes = len(source.encode("utf-8"))
    for old, new in PATCHES:
        if source.count(old) != 1:
            sys.exit(f"seed_baseline: the seed no longer contains {old!r} exactly once; update PATCHES")
        source = source.replace(old, new)
    return "import os\n" + source, original_bytes


def load(seed_file, folder):
    """Writes the patched function into `folder` and imports it: (module, size as written)."""
    with open(seed_file, encoding="utf-8") as f:
        source, original_bytes = extract(f.read())
    path = os.path.join(folder, "seed_lambda.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("seed_lambda", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, original_bytes


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# Operations whose consumed capacity is writes when the response gives only CapacityUnits.
WRITE_OPERATIONS = {"PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"}


def add_capacity(capacity, operation, reported):
    """Adds one response's ConsumedCapacity (a dict, or a list for batch and transaction calls)."""
    if reported is None:
        capacity["unreported"] += 1
        return
    for c in reported if isinstance(reported, list) else [reported]:
        read, write = c.get("ReadCapacityUnits"), c.get("WriteCapacityUnits")
        if read is None and write is None:
            total = c.get("CapacityUnits", 0.0)
            read, write = (0.0, total) if operation in WRITE_OPERATIONS else (total, 0.0)
        capacity["read_units"] += read or 0.0
        capacity["write_units"] += write or 0.0


def serve(module, protocol):
    counts = Counter()
    capacity = {"read_units": 0.0, "write_units": 0.0, "unreported": 0}

    def count(event_name, **_):
        counts[event_name.rsplit(".", 1)[-1]] += 1

    def ask_capacity(params, **_):
        params["ReturnConsumedCapacity"] = "TOTAL"

    def read_capacity(event_name, parsed, **_):
        add_capacity(capacity, event_name.rsplit(".", 1)[-1], parsed.get("ConsumedCapacity"))

    events = module.dynamodb.meta.client.meta.events
    events.register("before-send.dynamodb", count)
    # Every request asks for its consumed capacity (the seed's code text is unchanged: the parameter
    # is added to the request's parameters), and every response's figure is summed.
    events.register("before-parameter-build.dynamodb", ask_capacity)
    events.register("after-call.dynamodb", read_capacity)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("rss"):
            reply = {"max_rss_kb": peak_rss_kib()}
        else:
            with open(request["event"], encoding="utf-8") as f:
                event = json.load(f)
            if request["variant"] == "all":
                calls = [{"Records": [record]} for record in event["Records"]]
            else:
                calls = [event]
            counts.clear()
            capacity.update(read_units=0.0, write_units=0.0, unreported=0)
            error = None
            started = time.perf_counter()
            try:
                for call in calls:
                    module.lambda_handler(call, None)
            except Exception as e:  # reported to the bench, which stops with it
                error = f"{type(e).__name__}: {e}"
            seconds = time.perf_counter() - started
            reply = {"seconds": seconds, "requests": dict(counts), "capacity": dict(capacity), "error": error}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-file", required=True)
    parser.add_argument("mode", choices=["init", "serve"])
    args = parser.parse_args()
    protocol = sys.stdout
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # the seed's prints
    with tempfile.TemporaryDirectory(prefix="seed-baseline-") as folder:
        module, function_bytes = load(args.seed_file, folder)
        if args.mode == "init":
            protocol.write(f"ready {peak_rss_kib()}\n")
            protocol.flush()
            return
        import boto3

        hello = {"python": sys.version.split()[0], "boto3": boto3.__version__, "function_bytes": function_bytes}
        protocol.write(json.dumps(hello) + "\n")
        protocol.flush()
        serve(module, protocol)


if __name__ == "__main__":
    main()
