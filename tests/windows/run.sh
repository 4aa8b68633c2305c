#!/usr/bin/env bash
# tasksyncd on Windows, proven on Linux (issue 14): builds tasksyncd.exe and taskctl.exe for
# x86_64-pc-windows-gnu, lints that target with clippy -D warnings, and runs an end-to-end
# smoke test under Wine, all through the named pipe. `.ci/run` calls it.
#
# Toolchain: Debian's rustc-web/cargo-web with rust-web-src (the standard library's source, so
# -Zbuild-std can build std for the target; RUSTC_BOOTSTRAP=1 allows that flag on a stable
# compiler) and rust-web-clippy, mingw-w64 as linker, Wine 8 to run the result. Everything
# lives under target/windows/ (its own CARGO_HOME too, so this cargo never shares rustup's);
# nothing is cached between CI runs.
#
# Under CI=true a missing tool or a failed step fails the run; elsewhere missing tools are a
# skip with a message.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/windows
work=$root/target/windows
target=x86_64-pc-windows-gnu
wine=/usr/lib/wine/wine64
started=$SECONDS

say() { echo "== windows: $*"; }
die() { echo "FAILED (windows): $*" >&2; exit 1; }
skip_or_die() {
    if [ "${CI:-}" = true ]; then die "$*"; fi
    echo "SKIPPED (windows): $*" >&2
    exit 0
}

tools_present() {
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo-clippy ] &&
        [ -f /usr/lib/rustlib/src/rust/library/Cargo.lock ] &&
        command -v x86_64-w64-mingw32-gcc >/dev/null && [ -x "$wine" ] &&
        command -v python3 >/dev/null
}

if ! tools_present; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing rustc-web, cargo-web, rust-web-src, rust-web-clippy, mingw-w64, wine64"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64 \
            libwine >/dev/null
    fi
    tools_present || skip_or_die "the Windows toolchain (Debian's rustc-web, cargo-web, rust-web-src, rust-web-clippy, gcc-mingw-w64-x86-64, wine64) is missing and cannot be installed"
fi

# Debian's cargo and clippy first in PATH: rustup's proxies would pick rustup's toolchain,
# which has no std source for -Zbuild-std.
win_cargo() {
    env PATH="/usr/bin:/bin:$PATH" CARGO_HOME="$work/cargo-home" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_DIR="$work" RUSTC=/usr/bin/rustc /usr/bin/cargo "$1" \
        -Zbuild-std=std,panic_abort --target "$target" --locked "${@:2}"
}

say "$(/usr/bin/rustc --version), $(x86_64-w64-mingw32-gcc --version | head -1), $("$wine" --version)"
say "clippy for $target (-D warnings)"
win_cargo clippy -p tasksyncd -p taskctl -p tasksync-proto --all-targets -- -D warnings
say "building tasksyncd.exe and taskctl.exe"
win_cargo build -p tasksyncd -p taskctl
bin=$work/$target/debug
say "build and lint took $((SECONDS - started)) s"

# The sync server the Windows daemon syncs with: the Linux build (cargo test built it already).
cargo build --locked -p tasksync-server --quiet

# A Wine prefix of our own, with the ProcessPrng shim (test tooling, never shipped).
export WINEPREFIX=$work/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
rm -rf "$WINEPREFIX"
say "creating the Wine prefix"
"$wine" wineboot -i >/dev/null 2>&1 || die "wineboot failed"
/usr/lib/wine/wineserver -w    # the smoke test starts a wineserver of its own
x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    "$here/processprng.c" -ladvapi32
x86_64-w64-mingw32-gcc -O2 -o "$work/pipecat.exe" "$here/pipecat.c"

say "smoke test under Wine"
WINE="$wine" WINESERVER=/usr/lib/wine/wineserver BIN="$bin" PIPECAT="$work/pipecat.exe" SERVER="$root/target/debug/tasksync-server" \
    python3 "$here/smoke.py"
say "done in $((SECONDS - started)) s"
