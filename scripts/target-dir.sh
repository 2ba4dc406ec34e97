#!/usr/bin/env bash
# Prints the folder cargo builds this checkout into, as cargo itself resolves it (CARGO_TARGET_DIR,
# build.target-dir of a .cargo/config.toml, or target/): the scripts and make targets run binaries from there,
# never from a hard-coded target/.
#   scripts/target-dir.sh            e.g. /home/me/checkout/target, or $CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
