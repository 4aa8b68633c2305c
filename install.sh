#!/usr/bin/env bash
# install.sh: installs tasksync for the current user, or removes it again (--uninstall).
#
# What it installs (nothing outside your home folder, no root needed):
#   PREFIX/bin/tasksyncd, PREFIX/bin/taskctl      (cargo install --locked --path ...)
#   PREFIX/share/man/man1/taskctl*.1              (taskctl man --out-dir)
#   PREFIX/share/man/man1/tasksyncd.1             (tasksyncd --man)
#   PREFIX/share/man/man1/tasksync-server.1       (tasksync-server man), when a tasksync-server
#                                                 is at hand: in --from DIR, or on PATH
#   bash, zsh and fish completions for taskctl    (taskctl completions SHELL)
#   Linux:  ~/.config/systemd/user/tasksyncd.{service,socket}, with ExecStart pointing at
#           PREFIX/bin/tasksyncd, plus a drop-in that lets the sandboxed service write the
#           folders your configuration names (db, api_token_file) and listen where it says
#           (socket); then enables tasksyncd.socket.
#   macOS:  ~/Library/LaunchAgents/dev.tasksync.tasksyncd.plist, pointing at
#           PREFIX/bin/tasksyncd; then loads it.
# Run it again after changing `db`, `socket` or `api_token_file` in the config file, so the
# service follows. PREFIX defaults to ~/.local.
#
# Usage: ./install.sh [--prefix DIR] [--from DIR] [--service systemd|launchd|none] [--no-start]
#        ./install.sh --uninstall [--prefix DIR] [--service ...]
#   --from DIR   copy tasksyncd and taskctl from DIR (e.g. target/release) instead of building
#   --no-start   write (or remove) the service files but do not enable, start or stop anything
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local"
from=""
start=yes
action=install
case "$(uname -s)" in
    Darwin) service=launchd ;;
    *) service=systemd ;;
esac

die() { echo "install.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
        --from) [ $# -ge 2 ] || die "--from needs a folder"; from=$2; shift 2 ;;
        --service) [ $# -ge 2 ] || die "--service needs systemd, launchd or none"; service=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$service" in systemd|launchd|none) ;; *) die "--service takes systemd, launchd or none" ;; esac
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac

bin="$prefix/bin"
man_dir="$prefix/share/man/man1"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
config_home="${XDG_CONFIG_HOME:-$HOME/.config}"
bash_completion="$data_home/bash-completion/completions/taskctl"
zsh_completion="$data_home/zsh/site-functions/_taskctl"
fish_completion="$config_home/fish/completions/taskctl.fish"
units="$config_home/systemd/user"
agent="$HOME/Library/LaunchAgents/dev.tasksync.tasksyncd.plist"

say() { echo "install.sh: $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
# systemctl --user works only with a user manager (not in containers, CI, ssh without linger).
user_systemd() { have systemctl && systemctl --user show-environment >/dev/null 2>&1; }

# The value of `key` in `tasksyncd --print-config` (the daemon's own view of its settings,
# from the config file as the service will see it: no TASKSYNC_* variables of this shell).
setting() {
    env -u TASKSYNC_DB -u TASKSYNC_SOCKET -u TASKSYNC_API_TOKEN_FILE -u TASKSYNC_CONFIG \
        "$bin/tasksyncd" --print-config |
        sed -n "s/^$1 = \"\\(.*\\)\" *#.*/\\1/p" | sed 's/\\"/"/g; s/\\\\/\\/g'
}

# Prints the systemd drop-in that opens the configured folders to the sandboxed service.
paths_dropin() {
    local db socket api_token_file
    db=$(setting db)
    socket=$(setting socket)
    api_token_file=$(setting api_token_file)
    echo "# Written by install.sh from tasksyncd --print-config: the folders your configuration"
    echo "# names. Run install.sh again after changing db, socket or api_token_file."
    echo "[Service]"
    local dirs=()
    [ -n "$db" ] && dirs+=("$(dirname "$db")")
    dirs+=("$config_home/tasksync")
    # --print-config shows the default token file too, which lives in that folder.
    [ -n "$api_token_file" ] && [ "$(dirname "$api_token_file")" != "$config_home/tasksync" ] &&
        dirs+=("$(dirname "$api_token_file")")
    for dir in "${dirs[@]}"; do
        echo "ExecStartPre=+/bin/mkdir -p $(systemd_escape "$dir")"
        echo "ReadWritePaths=$(systemd_escape "$dir")"
    done
    if [ -n "$socket" ]; then
        echo "ReadWritePaths=-$(systemd_escape "$(dirname "$socket")")"
    fi
}

# The socket unit's drop-in when the configured socket is not the default one.
socket_dropin() {
    local socket default
    socket=$(setting socket)
    default="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/tasksync/tasksyncd.sock"
    [ -n "$socket" ] && [ "$socket" != "$default" ] || return 0
    echo "# Written by install.sh: the socket your configuration names."
    echo "[Socket]"
    echo "ListenStream="
    echo "ListenStream=$(systemd_escape "$socket")"
}

# Paths in unit files: `%` is a specifier and spaces separate paths.
systemd_escape() { printf '%s' "$1" | sed 's/%/%%/g; s/ /\\x20/g'; }

install_binaries() {
    mkdir -p "$bin"
    if [ -n "$from" ]; then
        for b in tasksyncd taskctl; do
            [ -x "$from/$b" ] || die "$from/$b is missing: build with cargo build --release first"
            install -m 755 "$from/$b" "$bin/$b"
        done
    else
        have cargo || die "cargo is needed (https://rustup.rs), or give --from DIR"
        cargo install --locked --root "$prefix" --path "$here/daemon"
        cargo install --locked --root "$prefix" --path "$here/ctl"
    fi
    say "installed tasksyncd and taskctl in $bin"
    case ":$PATH:" in *":$bin:"*) ;; *) say "note: $bin is not on your PATH" ;; esac
}

install_docs() {
    "$bin/taskctl" man --out-dir "$man_dir"
    "$bin/tasksyncd" --man > "$man_dir/tasksyncd.1"
    # The server is not installed by this script (it runs elsewhere, as a system service), but
    # its page is, when a tasksync-server is at hand.
    local server=""
    if [ -n "$from" ] && [ -x "$from/tasksync-server" ]; then
        server="$from/tasksync-server"
    elif have tasksync-server; then
        server=$(command -v tasksync-server)
    fi
    if [ -n "$server" ]; then
        "$server" man > "$man_dir/tasksync-server.1"
    else
        say "no tasksync-server at hand: its man page is not installed (later: tasksync-server man > $man_dir/tasksync-server.1)"
    fi
    mkdir -p "$(dirname "$bash_completion")" "$(dirname "$zsh_completion")" "$(dirname "$fish_completion")"
    "$bin/taskctl" completions bash > "$bash_completion"
    "$bin/taskctl" completions zsh > "$zsh_completion"
    "$bin/taskctl" completions fish > "$fish_completion"
    say "installed man pages in $man_dir and completions for bash, zsh and fish"
    say "zsh: make sure $(dirname "$zsh_completion") is in your fpath"
}

install_systemd() {
    mkdir -p "$units/tasksyncd.service.d" "$units/tasksyncd.socket.d"
    sed "s|^ExecStart=.*|ExecStart=$(systemd_escape "$bin/tasksyncd")|" \
        "$here/systemd/tasksyncd.service" > "$units/tasksyncd.service"
    cp "$here/systemd/tasksyncd.socket" "$units/tasksyncd.socket"
    paths_dropin > "$units/tasksyncd.service.d/paths.conf"
    local socket_conf
    socket_conf=$(socket_dropin)
    if [ -n "$socket_conf" ]; then
        printf '%s\n' "$socket_conf" > "$units/tasksyncd.socket.d/paths.conf"
    else
        rm -f "$units/tasksyncd.socket.d/paths.conf"
    fi
    rmdir "$units/tasksyncd.socket.d" 2>/dev/null || true
    say "installed the systemd user units in $units"
    if [ "$start" = yes ] && user_systemd; then
        systemctl --user daemon-reload
        systemctl --user enable --now tasksyncd.socket
        # A daemon started before this install keeps its old unit until it restarts.
        systemctl --user try-restart tasksyncd.service
        say "enabled tasksyncd.socket: the daemon starts on first use (taskctl status)"
    else
        say "to start it: systemctl --user daemon-reload && systemctl --user enable --now tasksyncd.socket"
    fi
}

install_launchd() {
    mkdir -p "$(dirname "$agent")" "$HOME/Library/Logs"
    sed -e "s|@TASKSYNCD@|$bin/tasksyncd|" -e "s|@HOME@|$HOME|g" \
        "$here/launchd/dev.tasksync.tasksyncd.plist" > "$agent"
    say "installed the LaunchAgent $agent"
    if [ "$start" = yes ] && have launchctl; then
        launchctl bootout "gui/$(id -u)/dev.tasksync.tasksyncd" 2>/dev/null || true
        launchctl bootstrap "gui/$(id -u)" "$agent"
        say "loaded it: tasksyncd runs now and at every login"
    else
        say "to start it: launchctl bootstrap gui/\$(id -u) $agent"
    fi
}

uninstall() {
    case "$service" in
        systemd)
            if [ "$start" = yes ] && user_systemd; then
                systemctl --user disable --now tasksyncd.socket tasksyncd.service 2>/dev/null || true
            fi
            rm -rf "$units/tasksyncd.service" "$units/tasksyncd.socket" \
                "$units/tasksyncd.service.d" "$units/tasksyncd.socket.d"
            if [ "$start" = yes ] && user_systemd; then systemctl --user daemon-reload; fi
            ;;
        launchd)
            if [ "$start" = yes ] && have launchctl; then
                launchctl bootout "gui/$(id -u)/dev.tasksync.tasksyncd" 2>/dev/null || true
            fi
            rm -f "$agent"
            ;;
        none) ;;
    esac
    rm -f "$bin/tasksyncd" "$bin/taskctl" "$man_dir"/taskctl.1 "$man_dir"/taskctl-*.1 \
        "$man_dir"/tasksyncd.1 "$man_dir"/tasksync-server.1 \
        "$bash_completion" "$zsh_completion" "$fish_completion"
    # cargo install's own records, when it installed the binaries.
    if have cargo && [ -f "$prefix/.crates.toml" ]; then
        cargo uninstall --root "$prefix" tasksyncd 2>/dev/null || true
        cargo uninstall --root "$prefix" taskctl 2>/dev/null || true
    fi
    say "removed tasksync's programs, service files, man pages and completions"
    say "your tasks are kept: $data_home/tasksync (and your settings in $config_home/tasksync)"
}

if [ "$action" = uninstall ]; then
    uninstall
    exit 0
fi
install_binaries
install_docs
case "$service" in
    systemd) install_systemd ;;
    launchd) install_launchd ;;
    none) ;;
esac
