#!/usr/bin/env bash
# The pure crate must not pull in async, AWS, storage, git or HTTP crates (ARCHITECTURE.md).
set -euo pipefail
forbidden='^(tokio|aws-[a-z0-9-]+|sled|git2|hyper|reqwest) '
found=$(cargo tree -p gitmoxi-deploy -e normal --prefix none | grep -E "$forbidden" | sort -u || true)
if [ -n "$found" ]; then
  echo "gitmoxi-deploy must stay pure, but depends on:" >&2
  echo "$found" >&2
  exit 1
fi
echo "gitmoxi-deploy dependency check: pure"
