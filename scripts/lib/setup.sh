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

# Windows from Linux (docs/packaging.md). The programs are built for x86_64-pc-windows-gnu
# with Debian's mingw-w64 as the linker (.cargo/config.toml), the installer with Debian's
# makensis, and the tests run under Debian's Wine through scripts/wine-run.
WINDOWS_TARGET=x86_64-pc-windows-gnu
# The crates built for Windows in CI (all but the bench and the cross-crate tests, which
# drive Linux tools), and those whose tests run as Windows programs under Wine: the engine
# and what it stands on, all in-process (the relay's, the CLI's and the app's own suites
# need Linux tools: Prosody, ejabberd, Pebble, network namespaces, Xvfb, D-Bus).
WINDOWS_BUILT_CRATES=(cryptocat-protocol cryptocat-link cryptocat-xml cryptocat-xmpp cryptocat-client
  cryptocat-cli cryptocat-server cryptocat-desktop)
WINDOWS_TESTED_CRATES=(cryptocat-protocol cryptocat-link cryptocat-xml cryptocat-xmpp cryptocat-client)

# windows_debug_build JSON: builds, in one cargo invocation, the debug Windows programs
# (cryptocat.exe, cryptocat-server.exe, cryptocat-desktop.exe) and every test program of
# WINDOWS_BUILT_CRATES, linted by clippy on the way (-D warnings): clippy-driver as the
# workspace's rustc wrapper, as `cargo clippy` runs it, but generating code. One invocation
# resolves features once, so every dependency is built once for the lints, the tests, the
# Wine tests and the installer; a separate `cargo clippy` and `cargo build` (other packages
# selected, other features) rebuilt most of the tree (docs/packaging.md). cargo's JSON
# messages go to JSON (run_windows_tests reads the test programs from them).
windows_debug_build() {
  local json=$1 packages=() p clippy
  for p in "${WINDOWS_BUILT_CRATES[@]}"; do packages+=(-p "$p"); done
  clippy=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
  RUSTC_WORKSPACE_WRAPPER=$clippy CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo test --target "$WINDOWS_TARGET" --locked --no-run "${packages[@]}" \
    --message-format=json-render-diagnostics >"$json"
}

# run_windows_tests JSON: runs under Wine (scripts/wine-run) the test programs of
# WINDOWS_TESTED_CRATES listed in JSON (from windows_debug_build), each in its package's
# directory as cargo runs tests, and prints each one's result and the totals.
run_windows_tests() {
  local json=$1 dir exe log passed=0 failed=0 ignored=0 n start a b c
  log=$(mktemp)
  start=$(date +%s)
  while read -r dir exe; do
    if ! (cd "$dir" && CARGO_MANIFEST_DIR=$dir "$OLDPWD/scripts/wine-run" "$exe") >"$log" 2>&1; then
      cat "$log" >&2
      echo "run_windows_tests: $(basename "$exe") failed under Wine" >&2
      rm -f "$log"
      return 1
    fi
    echo "  $(basename "$(dirname "$dir")")/$(basename "$dir") $(basename "$exe"): $(grep -h '^test result' "$log" | tail -n 1)"
    n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log" | tail -n 1)
    read -r a b c <<<"${n:-0 0 0}"
    passed=$((passed + a)) failed=$((failed + b)) ignored=$((ignored + c))
  done < <(python3 - "$json" "${WINDOWS_TESTED_CRATES[@]}" <<'PY'
import json, os, sys, tomllib
wanted = set(sys.argv[2:])
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        with open(m["manifest_path"], "rb") as f:
            name = tomllib.load(f)["package"]["name"]
        if name in wanted:
            print(os.path.dirname(m["manifest_path"]), m["executable"])
PY
)
  rm -f "$log"
  [ "$passed" -gt 0 ] || { echo "run_windows_tests: no test ran" >&2; return 1; }
  echo "run_windows_tests: $passed passed, $failed failed, $ignored ignored, as Windows programs under Wine ($(($(date +%s) - start)) s)"
}

# ensure_windows_toolchain: Rust's x86_64-pc-windows-gnu target (rustup) and mingw-w64 (the
# linker; it also builds the Wine tests' bcryptprimitives.dll shim).
ensure_windows_toolchain() {
  ensure_apt gcc-mingw-w64-x86-64
  if command -v rustup >/dev/null 2>&1 &&
     ! rustup target list --installed 2>/dev/null | grep -qx "$WINDOWS_TARGET"; then
    log "Adding Rust's $WINDOWS_TARGET target (rustup)"
    rustup target add "$WINDOWS_TARGET"
  fi
}

# ensure_windows_packaging: makensis (the installer, deploy/windows/cryptocat.nsi) and 7z
# (check_windows_installer lists what the installer holds).
ensure_windows_packaging() {
  ensure_apt nsis p7zip-full
}

# ensure_wine: Debian's Wine (64-bit), which runs the Windows programs and tests.
ensure_wine() {
  ensure_apt wine64 wine
}

# wine_reg_value KEY NAME: a registry value in the test Wine prefix (empty when missing);
# NAME "" is the key's default value.
wine_reg_value() {
  local key=$1 name=$2 out
  if [ -z "$name" ]; then
    out=$(scripts/wine-run reg query "$key" /ve 2>/dev/null) || return 0
  else
    out=$(scripts/wine-run reg query "$key" /v "$name" 2>/dev/null) || return 0
  fi
  tr -d '\r' <<<"$out" | sed -n 's/^    .*    REG_[A-Z_]*    \{0,1\}//p' | head -n 1
}

# check_windows_installer FILE: fails unless the installer holds the app (with the WebView2
# loader the GNU build needs), its icon, the command-line tools and the uninstaller; then,
# where Wine is installed (required under CRYPTOCAT_REQUIRE_INTEROP=1), installs it
# silently with the command-line tools in the test Wine prefix and checks the Start-menu
# entry, the cryptocat: URL scheme, the toasts' AppUserModelID, the PATH entry and the
# "Installed apps" entry; runs the installed CLI and app; uninstalls and checks that
# everything is gone and PATH is as before.
check_windows_installer() {
  local installer=$1 listing path dir wdir winexe before value programs out status
  listing=$(7z l "$installer")
  grep -q 'NSIS-3 Unicode 64-bit' <<<"$listing" ||
    { echo "check_windows_installer: $installer is not a 64-bit NSIS 3 installer" >&2; return 1; }
  for path in cryptocat-desktop.exe WebView2Loader.dll cryptocat.png bin/cryptocat.exe \
    bin/cryptocat-server.exe uninstall.exe; do
    grep -Eq " $path\$" <<<"$listing" ||
      { echo "check_windows_installer: $installer lacks $path" >&2; return 1; }
  done
  if ! command -v /usr/lib/wine/wine64 wine64 wine >/dev/null 2>&1; then
    if [ "${CRYPTOCAT_REQUIRE_INTEROP:-}" = 1 ]; then
      echo "check_windows_installer: Wine is missing" >&2
      return 1
    fi
    echo "check_windows_installer: SKIPPED installing it (no Wine): $installer holds the app, the command-line tools and the uninstaller"
    return 0
  fi
  export CRYPTOCAT_WINEPREFIX=${CRYPTOCAT_WINEPREFIX:-$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/wine-prefix}
  dir='C:\cryptocat-installer-check'
  wdir=$CRYPTOCAT_WINEPREFIX/drive_c/cryptocat-installer-check
  winexe="\"$dir\\cryptocat-desktop.exe\""
  rm -rf "$wdir"
  before=$(wine_reg_value 'HKCU\Environment' Path)
  # As an install from before the identifier changed left it: the update removes it.
  scripts/wine-run reg add 'HKCU\Software\Classes\AppUserModelId\invalid.cryptocat.desktop' \
    /v DisplayName /d Cryptocat /f >/dev/null 2>&1
  scripts/wine-run "$installer" /S /CLI "/D=$dir" ||
    { echo "check_windows_installer: the silent install failed" >&2; return 1; }
  programs=$CRYPTOCAT_WINEPREFIX/drive_c/users/$(id -un)/AppData/Roaming/Microsoft/Windows/Start\ Menu/Programs
  for path in cryptocat-desktop.exe WebView2Loader.dll cryptocat.png bin/cryptocat.exe \
    bin/cryptocat-server.exe uninstall.exe; do
    [ -f "$wdir/$path" ] || { echo "check_windows_installer: nothing installed at $path" >&2; return 1; }
  done
  [ -f "$programs/Cryptocat.lnk" ] ||
    { echo "check_windows_installer: no Start-menu entry ($programs/Cryptocat.lnk)" >&2; return 1; }
  value=$(wine_reg_value 'HKCU\Software\Classes\cryptocat\shell\open\command' '')
  [ "$value" = "$winexe \"%1\"" ] ||
    { echo "check_windows_installer: the cryptocat: scheme runs [$value], not [$winexe \"%1\"]" >&2; return 1; }
  scripts/wine-run reg query 'HKCU\Software\Classes\cryptocat' /v 'URL Protocol' >/dev/null 2>&1 ||
    { echo "check_windows_installer: the cryptocat key has no 'URL Protocol' value" >&2; return 1; }
  value=$(wine_reg_value 'HKCU\Software\Classes\AppUserModelId\cat.crypto.Cryptocat' DisplayName)
  [ "$value" = Cryptocat ] ||
    { echo "check_windows_installer: the toasts' AppUserModelID is not registered" >&2; return 1; }
  if scripts/wine-run reg query 'HKCU\Software\Classes\AppUserModelId\invalid.cryptocat.desktop' >/dev/null 2>&1; then
    echo "check_windows_installer: the former identifier's AppUserModelID is still registered" >&2
    return 1
  fi
  value=$(wine_reg_value 'HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\Cryptocat' UninstallString)
  [ "$value" = "\"$dir\\uninstall.exe\"" ] ||
    { echo "check_windows_installer: the uninstall entry runs [$value]" >&2; return 1; }
  value=$(wine_reg_value 'HKCU\Environment' Path)
  [ "$value" = "${before:+$before;}$dir\\bin" ] ||
    { echo "check_windows_installer: PATH is [$value], not [${before:+$before;}$dir\\bin]" >&2; return 1; }
  # The installed programs run: the CLI, and the app up to its window, which needs the
  # WebView2 Runtime that Wine does not have (the app then says so and exits 1).
  out=$(scripts/wine-run "$dir\\bin\\cryptocat.exe" --version)
  grep -q '^cryptocat ' <<<"$out" ||
    { echo "check_windows_installer: the installed cryptocat.exe printed [$out]" >&2; return 1; }
  status=0
  out=$(timeout 60 scripts/wine-run "$dir\\cryptocat-desktop.exe" 2>&1) || status=$?
  grep -qi 'webview2\|webview' <<<"$out" ||
    { echo "check_windows_installer: the installed app (status $status) printed [$out]" >&2; return 1; }
  scripts/wine-run "$dir\\uninstall.exe" /S "_?=$dir" ||
    { echo "check_windows_installer: the silent uninstall failed" >&2; return 1; }
  # Run in place (_?=), the uninstaller cannot delete itself.
  rm -f "$wdir/uninstall.exe"
  rmdir "$wdir" 2>/dev/null ||
    { echo "check_windows_installer: the uninstaller left files: $(find "$wdir" -type f)" >&2; return 1; }
  [ ! -e "$programs/Cryptocat.lnk" ] ||
    { echo "check_windows_installer: the uninstaller left the Start-menu entry" >&2; return 1; }
  for path in 'HKCU\Software\Classes\cryptocat' 'HKCU\Software\Classes\AppUserModelId\cat.crypto.Cryptocat' \
    'HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\Cryptocat' 'HKCU\Software\Cryptocat'; do
    if scripts/wine-run reg query "$path" >/dev/null 2>&1; then
      echo "check_windows_installer: the uninstaller left $path" >&2
      return 1
    fi
  done
  value=$(wine_reg_value 'HKCU\Environment' Path)
  [ "$value" = "$before" ] ||
    { echo "check_windows_installer: PATH is [$value] after uninstalling, was [$before]" >&2; return 1; }
  echo "check_windows_installer: $installer installs (Start menu, cryptocat: links, PATH, uninstall entry) and uninstalls cleanly under Wine"
}
