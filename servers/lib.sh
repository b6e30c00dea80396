# Sourced by the Go servers' build scripts (servers/*/build.sh): how a build is keyed in the
# cache, how a wrapper go.mod is checked against versions.env, and the progress line.

# The cache key of a build: the first 16 hex digits of the sha256 of the given files, in order.
cache_key() { cat "$@" | sha256sum | cut -c1-16; }

# Fail unless the go.mod requires the module at the pinned version (a stale go.mod would
# silently build another version than versions.env names).
require_pin() { # go.mod module-path version
  local gomod="$1" path="$2" version="$3"
  if ! grep -Eq "^(require)?[[:space:]]*${path//./\\.} ${version//./\\.}( // indirect)?\$" "${gomod}"; then
    echo "build.sh: ${gomod} does not require ${path} ${version} (versions.env)" >&2
    exit 1
  fi
}

log() { echo "build.sh: $(date -u +%H:%M:%S) $*" >&2; }
