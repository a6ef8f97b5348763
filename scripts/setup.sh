# Sourced by scripts/run and scripts/test: a virtualenv with the project, and the
# Debian tools the archive and its tests use (age, exiftool, rclone), installed when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EVIDENCE_VENV:-$ROOT/.venv}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root to run: $*" >&2; return 1
  fi
}

ensure_debian_tools() {
  local missing=()
  command -v age >/dev/null 2>&1 || missing+=(age)
  command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
  command -v rclone >/dev/null 2>&1 || missing+=(rclone)  # a real WebDAV client, for the /dav/ tests
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the browser of the web pages' tests
  command -v npm >/dev/null 2>&1 || missing+=(npm)  # installs the pages' front-end libraries
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  local extra="${1:-}"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$extra" 2>&1 | grep -v -e '^WARNING: Location' -e 'pip as the .root. user' >&2 || true
  "$VENV/bin/python" -c "import archive, sqlmodel" || { echo "installing the project failed" >&2; return 1; }
  export PATH="$VENV/bin:$PATH"
}

ensure_frontend() {
  # The web pages' libraries (htmx, tus-js-client, Chart.js, Leaflet; axe-core for the tests) from npm,
  # exactly as package-lock.json pins them; never from a CDN, never committed.
  local dir="$ROOT/api/web/frontend"
  local stamp="$dir/node_modules/.installed-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "installing the web pages' front-end libraries (npm ci)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$dir/package-lock.json" "$stamp"
  fi
}
