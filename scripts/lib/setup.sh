# Shared set-up for scripts/run and scripts/test, for a fresh Debian or Ubuntu machine.
# Each step checks first and installs only what is missing.

# Each line carries the minutes and seconds since the script started ($SECONDS), so a CI
# log tells where the time went.
log() { printf '\033[1m==> [%02d:%02d] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
# ensure_apt PKG...: installs the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "Installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust: a Rust toolchain (1.85 or newer) with rustfmt and clippy.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    ensure_apt curl ca-certificates
    log "Installing Rust with rustup (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
      rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
  fi
  ensure_apt build-essential pkg-config
}

# ensure_node: Node.js and npm (for third-party JavaScript XMPP clients in tests).
ensure_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    ensure_apt nodejs npm
  fi
}

# ensure_prosody: Prosody from Debian's packages, for the interop tests
# (crates/relay/tests/relay/prosody.rs starts it with deploy/prosody/prosody.cfg.lua) and
# the relay benchmark's peer.
# The package does not start a service where there is no init system; the tests run
# their own instance on free loopback ports.
ensure_prosody() {
  command -v prosody >/dev/null 2>&1 || ensure_apt prosody
}

# ensure_pebble: Pebble, the ACME test CA, and pebble-challtestsrv (its DNS), from
# Debian's package, for the relay's ACME test (crates/relay/tests/relay/acme.rs starts both
# on free loopback ports).
ensure_pebble() {
  { command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1; } ||
    ensure_apt pebble
}

# ensure_ejabberd: ejabberd from Debian's packages, for the stock-server tests
# (tests/support/ejabberd.rs runs a private node per test: its own directory, node name,
# ports and cookie, no epmd). The tests never use the system service, and none may be left
# running: where the package's service was started (systemd), it is stopped and disabled.
ensure_ejabberd() {
  command -v ejabberdctl >/dev/null 2>&1 || ensure_apt ejabberd
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet ejabberd || systemctl is-enabled --quiet ejabberd 2>/dev/null; then
      log "Stopping and disabling the system ejabberd service (the tests run their own nodes)"
      as_root systemctl disable --now ejabberd
    fi
  elif pgrep -f -- '-sname ejabberd@' >/dev/null 2>&1; then
    log "Stopping the system ejabberd node (the tests run their own nodes)"
    as_root ejabberdctl stop >/dev/null 2>&1 || true
    as_root ejabberdctl stopped >/dev/null 2>&1 || true
  fi
}

# ensure_npm_packages DIR: the packages pinned in DIR/package-lock.json.
ensure_npm_packages() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    log "Installing npm packages in $dir"
    (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
    touch "$dir/node_modules"
  fi
}

# ensure_python_venv: a Python virtual environment with slixmpp (a third-party XMPP client
# used by the relay's interop test), at target/interop-venv. Prints nothing when present.
INTEROP_VENV="${INTEROP_VENV:-$PWD/target/interop-venv}"
SLIXMPP_VERSION=1.17.0
ensure_python_venv() {
  if [ -x "$INTEROP_VENV/bin/python" ] &&
     "$INTEROP_VENV/bin/python" -c "import slixmpp, sys; sys.exit(slixmpp.__version__ != '$SLIXMPP_VERSION')" 2>/dev/null; then
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || ensure_apt python3
  python3 -c 'import ensurepip, venv' 2>/dev/null || ensure_apt python3-venv
  log "Creating a Python venv with slixmpp $SLIXMPP_VERSION in $INTEROP_VENV"
  rm -rf "$INTEROP_VENV"
  python3 -m venv "$INTEROP_VENV"
  "$INTEROP_VENV/bin/pip" install --quiet --disable-pip-version-check "slixmpp==$SLIXMPP_VERSION"
}

# ensure_tauri_deps: the system libraries the desktop app (src-tauri) builds against:
# WebKitGTK 4.1, GTK 3, librsvg, OpenSSL, libxdo, and the app indicator for the tray.
ensure_tauri_deps() {
  ensure_apt libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev \
    libssl-dev libxdo-dev build-essential pkg-config
}

# ensure_netns_tools: what the "another computer" tests (tests/two_computers.rs) use:
# iproute2 for network namespaces and veth pairs, tcpdump to watch the wire between them.
ensure_netns_tools() {
  ensure_apt iproute2 tcpdump
}

# ensure_chromium: Debian's Chromium, which the UI's Playwright tests drive (Playwright
# never downloads a browser here; ui/playwright.config.ts points at /usr/bin/chromium).
# ensure_desktop_os_deps: what the desktop app's OS-facing tests run against: a D-Bus session
# bus and dbus-monitor (notifications), dunst as a real notification server under Xvfb,
# gnome-keyring as a real Secret Service (keyring), libdbus headers for the keyring crate.
ensure_desktop_os_deps() {
  ensure_apt dbus dbus-bin dbus-daemon libdbus-1-dev dunst xvfb gnome-keyring
}
ensure_chromium() {
  ensure_apt chromium
}

# ensure_ui: the UI's npm packages (pinned in ui/package-lock.json) and the built UI in
# ui/dist, which src-tauri embeds (so it must exist before cargo builds the workspace).
ensure_ui() {
  ensure_node
  ensure_npm_packages ui
  log "Building the UI (ui/dist)"
  (cd ui && npx vite build --logLevel warn)
}

# ensure_tauri_driver: what the desktop end-to-end test (src-tauri/tests/e2e.rs) drives the
# app with: tauri-driver (crates.io, pinned) in front of Debian's WebKitWebDriver
# (webkit2gtk-driver), under Xvfb; xwd (x11-apps) for its screenshots, with a colour emoji
# font so that messages with emoji show as people see them; xclock (x11-apps), xdotool and
# python3-gi (the tray host, tests/support/sni_host.py) for the desktop-session part.
TAURI_DRIVER_VERSION=2.1.0
ensure_tauri_driver() {
  ensure_apt webkit2gtk-driver xvfb x11-apps fonts-noto-color-emoji xdotool python3-gi
  if ! command -v tauri-driver >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/tauri-driver" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! tauri-driver --help 2>/dev/null | grep -q -- --native-driver ||
     [ "$(cargo install --list 2>/dev/null | sed -n 's/^tauri-driver v\([^:]*\):$/\1/p')" != "$TAURI_DRIVER_VERSION" ]; then
    log "Installing tauri-driver $TAURI_DRIVER_VERSION (cargo install)"
    cargo install tauri-driver --version "$TAURI_DRIVER_VERSION" --locked --quiet
  fi
}

# check_deb FILE: fails unless the desktop .deb holds the binary, its desktop entry (which
# handles cryptocat:// links: MimeType=x-scheme-handler/cryptocat, Exec with %u) and icons,
# declares the runtime libraries it needs, and its binary finds every library.
check_deb() {
  local deb=$1 listing control dir
  listing=$(dpkg-deb -c "$deb")
  control=$(dpkg-deb -f "$deb")
  for path in usr/bin/cryptocat-desktop usr/share/applications/Cryptocat.desktop \
    usr/share/icons/hicolor/32x32/apps/cryptocat-desktop.png \
    usr/share/icons/hicolor/128x128/apps/cryptocat-desktop.png \
    usr/share/icons/hicolor/512x512/apps/cryptocat-desktop.png; do
    grep -Eq " (\./)?$path\$" <<<"$listing" || { echo "check_deb: $deb lacks $path" >&2; return 1; }
  done
  for dep in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
    grep -Eq "^Depends:.*\b$dep\b" <<<"$control" || { echo "check_deb: $deb does not depend on $dep" >&2; return 1; }
  done
  dir=$(mktemp -d)
  dpkg-deb -x "$deb" "$dir"
  grep -q '^Exec=cryptocat-desktop' "$dir/usr/share/applications/Cryptocat.desktop" ||
    { echo "check_deb: the desktop entry does not run cryptocat-desktop" >&2; rm -rf "$dir"; return 1; }
  # Invite links: the entry handles the cryptocat URL scheme and is given the link (%u).
  grep -Eq '^MimeType=([^;]*;)*x-scheme-handler/cryptocat(;.*)?$' "$dir/usr/share/applications/Cryptocat.desktop" ||
    { echo "check_deb: the desktop entry does not handle cryptocat:// links (MimeType=x-scheme-handler/cryptocat)" >&2; rm -rf "$dir"; return 1; }
  grep -q '^Exec=cryptocat-desktop %u$' "$dir/usr/share/applications/Cryptocat.desktop" ||
    { echo "check_deb: the desktop entry does not pass the link to cryptocat-desktop (Exec=cryptocat-desktop %u)" >&2; rm -rf "$dir"; return 1; }
  if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$dir/usr/share/applications/Cryptocat.desktop" >&2 ||
      { echo "check_deb: desktop-file-validate refused the desktop entry" >&2; rm -rf "$dir"; return 1; }
  fi
  if ldd "$dir/usr/bin/cryptocat-desktop" | grep -q 'not found'; then
    ldd "$dir/usr/bin/cryptocat-desktop" | grep 'not found' >&2
    rm -rf "$dir"
    return 1
  fi
  rm -rf "$dir"
  echo "check_deb: $deb holds the binary, desktop entry (cryptocat:// links) and icons; Depends: $(sed -n 's/^Depends: //p' <<<"$control")"
}
