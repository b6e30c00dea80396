#!/usr/bin/env bash
# Builds the Go Pub/Sub test servers (pstest_server, fastsub, ...) under tests/pubsub into
#   ${BURST_DISPATCHER_CACHE:-$HOME/.cache/burst-dispatcher}/pubsub/<hash of sources+go.sum>/
# and prints the binary paths. The hash is computed by binaries.py, which the pytest plugin
# uses too, so pytest finds exactly the binaries built from the current sources and never
# builds anything itself. When that directory already exists this takes a second.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
out="$("$python" "$here/binaries.py" dir)"

mapfile -t dirs < <(find "$here" -mindepth 2 -maxdepth 2 -name go.mod -printf '%h\n' | sort)
if [[ ${#dirs[@]} -eq 0 ]]; then
  echo "build.sh: no Go servers under $here" >&2
  exit 1
fi

all_built() {
  local d
  for d in "${dirs[@]}"; do
    [[ -x "$1/$(basename "$d")" ]] || return 1
  done
}

if ! all_built "$out"; then
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp -d "$out.tmp.XXXXXX")"
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  for d in "${dirs[@]}"; do
    name="$(basename "$d")"
    echo "build.sh: building $name ..." >&2
    (cd "$d" && CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$tmp/$name" .)
  done
  # Publish atomically. If a concurrent build finished meanwhile, keep its (identical) result;
  # a directory left incomplete (older server set, interrupted copy) is replaced.
  if all_built "$out"; then
    rm -rf "$tmp"
  else
    rm -rf "$out"
    mv -T "$tmp" "$out"
  fi
  trap - EXIT
fi
ln -sfn "$out" "$(dirname "$out")/current"

for d in "${dirs[@]}"; do
  echo "$out/$(basename "$d")"
done
