#!/usr/bin/env bash
# The pure crate must not pull in async, AWS, storage, git or HTTP crates, and the shipped binary
# no test double (ARCHITECTURE.md).
set -euo pipefail
forbidden='^(tokio|aws-[a-z0-9-]+|sled|git2|hyper|reqwest) '
found=$(cargo tree -p gitmoxi-deploy -e normal --prefix none | grep -E "$forbidden" | sort -u || true)
if [ -n "$found" ]; then
  echo "gitmoxi-deploy must stay pure, but depends on:" >&2
  echo "$found" >&2
  exit 1
fi
echo "gitmoxi-deploy dependency check: pure"

# The shipped binary holds no test double: the fake AWS world and the fault proxy live in
# gitmoxi-testing, which only tests and benchmarks may depend on.
if cargo tree -p gitmoxi -e normal --prefix none | grep -q '^gitmoxi-testing '; then
  echo "the shipped gitmoxi must not depend on gitmoxi-testing (the fake world and the fault proxy)" >&2
  exit 1
fi
echo "gitmoxi dependency check: no test doubles in the shipped binary"
