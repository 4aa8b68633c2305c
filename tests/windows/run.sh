#!/usr/bin/env bash
# tasksyncd on Windows, proven on Linux (issue 14): builds tasksyncd.exe and taskctl.exe for
# x86_64-pc-windows-gnu, lints that target with clippy -D warnings, and runs an end-to-end
# smoke test under Wine, all through the named pipe. `.ci/run` calls it.
#
# Toolchain: Debian's rustc-web/cargo-web with rust-web-src (the standard library's source, so
# -Zbuild-std can build std for the target; RUSTC_BOOTSTRAP=1 allows that flag on a stable
# compiler) and rust-web-clippy, mingw-w64 as linker, Wine 8 to run the result.
#
# Where rustc-web comes from: Debian 12 (bookworm) main has rustc-web 1.85, older than the
# workspace's rust-version (1.89). The security suite, bookworm-security
# (`deb http://deb.debian.org/debian-security bookworm-security main`, on by default in
# Debian's images), carries the newer rustc-web that Firefox ESR needs (1.96 at the time of
# writing), and apt takes it from there. Without that suite the compiler found is too old;
# this script says so instead of failing inside cargo.
#
# Caches: the build lives under target/windows/ (a rebuild is incremental). The crates this
# cargo downloads (the workspace's and those of std's source) are kept in its own CARGO_HOME,
# separate from rustup's: $TASKSYNC_WINDOWS_CARGO_HOME, by default
# ${XDG_CACHE_HOME:-~/.cache}/tasksync/windows-cargo-home, outside the checkout, so a fresh
# clone (as CI makes) downloads nothing that an earlier run on the machine already fetched.
#
# Under CI (CI set, and not "false" or "0") a missing tool or a failed step fails the run.
# Elsewhere missing tools that cannot be installed (not root, no apt-get) end the script with
# a banner that says, in capitals, that the Windows build was NOT checked; its exit status is
# then 0, so .ci/run can be tried on a workstation, but the banner is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/windows
work=$root/target/windows
target=x86_64-pc-windows-gnu
wine=/usr/lib/wine/wine64
started=$SECONDS

cargo_home=${TASKSYNC_WINDOWS_CARGO_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tasksync/windows-cargo-home}
# The minimum Rust the workspace needs (Cargo.toml's rust-version).
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)

say() { echo "== windows: $*"; }
die() { echo "FAILED (windows): $*" >&2; exit 1; }
in_ci() { [ -n "${CI:-}" ] && [ "${CI}" != false ] && [ "${CI}" != 0 ]; }
skip_or_die() {
    if in_ci; then die "$* (CI is set: a skipped Windows check fails the run)"; fi
    {
        echo
        echo "################################################################################"
        echo "##  SKIPPED -- THE WINDOWS BUILD WAS NOT CHECKED. THIS IS NOT A PASS."
        echo "##  why: $*"
        echo "##  to run it: as root on Debian 12 with bookworm-security enabled (this script"
        echo "##  installs the tools), or install them yourself; with CI set this fails."
        echo "################################################################################"
    } >&2
    exit 0
}

# Whether version $1 (x.y[.z]) is at least $2.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]
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
have_rust=$(/usr/bin/rustc --version | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
version_at_least "$have_rust" "$need_rust" ||
    skip_or_die "Debian's rustc-web is $have_rust, the workspace needs $need_rust: enable the bookworm-security suite (deb http://deb.debian.org/debian-security bookworm-security main), apt-get update, and install rustc-web again"

# The crate cache of earlier runs that kept it inside target/ moves to the shared place once.
mkdir -p "$(dirname "$cargo_home")"
if [ -d "$work/cargo-home" ] && [ ! -e "$cargo_home" ]; then
    mv "$work/cargo-home" "$cargo_home"
fi

# Debian's cargo and clippy first in PATH: rustup's proxies would pick rustup's toolchain,
# which has no std source for -Zbuild-std.
win_cargo() {
    env PATH="/usr/bin:/bin:$PATH" CARGO_HOME="$cargo_home" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_DIR="$work" RUSTC=/usr/bin/rustc /usr/bin/cargo "$1" \
        -Zbuild-std=std,panic_abort --target "$target" --locked "${@:2}"
}

say "$(/usr/bin/rustc --version), $(x86_64-w64-mingw32-gcc --version | head -1), $("$wine" --version)"
say "crate cache: $cargo_home ($(find "$cargo_home/registry/cache" -name '*.crate' 2>/dev/null | wc -l) crates already there)"
say "clippy for $target (-D warnings)"
win_cargo clippy -p tasksyncd -p taskctl -p tasksync-proto -p tasksync-core --all-targets -- -D warnings
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
