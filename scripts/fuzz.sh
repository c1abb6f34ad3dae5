#!/usr/bin/env bash
# Runs every cargo fuzz target for SECONDS each (default 20; `make fuzz` runs longer).
#   bash scripts/fuzz.sh [SECONDS] [--grow]
# cargo-fuzz is installed into .tools/ on first use (pinned); the targets build on stable Rust
# without a sanitizer (the code under test forbids unsafe). New inputs go to a scratch directory,
# or into fuzz/corpus/ with --grow. A crash stops the run and prints how to replay it; save the
# input under fuzz/regressions/<target>/ so `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
grow="${2:-}"
tools="$PWD/.tools"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --version 0.13.2 --locked --root "$tools" --quiet
fi
export PATH="$tools/bin:$PATH"
cd fuzz
cargo fuzz build -s none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in render_and_load depdef webhook; do
  mkdir -p "$scratch/$target"
  dirs=("$scratch/$target" "corpus/$target")
  [ "$grow" = "--grow" ] && dirs=("corpus/$target")
  echo "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run -s none "$target" "${dirs[@]}" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      >"$scratch/$target.log" 2>&1; then
    grep -E "panicked|SUMMARY|Test unit written|cargo fuzz run" "$scratch/$target.log" >&2 || tail -30 "$scratch/$target.log" >&2
    echo "fuzz target $target failed: the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^Done|DONE" "$scratch/$target.log" | tail -1
done
