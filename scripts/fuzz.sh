#!/usr/bin/env bash
# Bounded fuzzing of everything that parses bytes from the network (the targets in fuzz/):
# each target runs for CHAT_FUZZ_SECONDS (default 30) on a copy of its committed corpus, so
# the tree stays clean, and the script fails if any target crashed (the crashing input is
# kept in fuzz/artifacts/<target>/, which git ignores). Installs what it needs: a nightly
# toolchain (cargo-fuzz's sanitizer flags need one) and cargo-fuzz.
#
#   scripts/fuzz.sh                       # every target, 30 s each
#   CHAT_FUZZ_SECONDS=600 scripts/fuzz.sh sdk_frame
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${CHAT_FUZZ_SECONDS:-30}"
log() { printf '\n== fuzz: %s\n' "$*" >&2; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd fuzz
log "building the targets"
cargo +nightly fuzz build

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

failed=()
for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  if [ -d "corpus/$target" ]; then
    cp -R "corpus/$target/." "$corpus/"
  fi
  log "$target for ${seconds}s on $(find "$corpus" -type f | wc -l) inputs"
  # -rss_limit_mb: no input may make a parser take more than this (the transport's frame
  # bound is 24 MiB); -timeout: nor this many seconds.
  if ! cargo +nightly fuzz run "$target" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  log "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
log "no crash in ${targets[*]}"
