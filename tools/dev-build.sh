#!/usr/bin/env bash
# Rebuild the compiled core into the active (dev) environment.
# Serialised with a lock so that parallel rebuilds never share a build dir.
set -euo pipefail
cd "$(dirname "$0")/.."
exec flock /tmp/fastregen-build.lock \
  pip install --no-build-isolation --no-deps -q -e . -Ceditable.mode=redirect
