#!/bin/sh
# Screenshots of the real console: the demo in tmux, the pane captured
# with its colours (capture-pane -e), turned into HTML by ansi2html.py
# (no false background boxes behind bright text) and into a PNG by
# headless Chromium.
#
#   tools/screenshot.sh start COLS ROWS      # the demo in a tmux session
#   tools/screenshot.sh keys KEY...          # tmux send-keys, one by one
#   tools/screenshot.sh size COLS ROWS       # resize the window
#   tools/screenshot.sh shot NAME            # screenshots/NAME.png
#   tools/screenshot.sh stop
#
# Needs tmux, python3 and chromium (apt-get install -y chromium); run as
# root in a container (Chromium's sandbox is off).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
session=${PXEDECK_SHOT_SESSION:-s7c-shot}
bin=${PXEDECK_BIN:-$here/target/debug/pxedeck}
case "${1:-}" in
start)
    tmux new-session -d -s "$session" -x "$2" -y "$3" \
        -e PXEDECK_NO_MOUSE=1 "cd $here && $bin demo --unknown ${PXEDECK_SHOT_UNKNOWN:-12} --every ${PXEDECK_SHOT_EVERY:-1}"
    ;;
keys)
    shift
    for k in "$@"; do
        tmux send-keys -t "$session" "$k"
        sleep 0.3
    done
    ;;
size)
    tmux resize-window -t "$session" -x "$2" -y "$3"
    sleep 1
    ;;
shot)
    name=$2
    cols=$(tmux display -p -t "$session" '#{pane_width}')
    rows=$(tmux display -p -t "$session" '#{pane_height}')
    tmp=$(mktemp -d)
    tmux capture-pane -e -p -t "$session" > "$tmp/screen.ansi"
    python3 "$here/tools/ansi2html.py" --cols "$cols" --title "$name" \
        < "$tmp/screen.ansi" > "$tmp/screen.html"
    # 14px DejaVu Sans Mono: 8.43 px a column, 17 px a row, 8 px padding.
    w=$(( cols * 843 / 100 + 17 ))
    h=$(( rows * 17 + 16 ))
    mkdir -p "$here/screenshots"
    chromium --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update \
        --disable-sync --no-first-run --hide-scrollbars \
        --user-data-dir="$tmp/profile" \
        --screenshot="$here/screenshots/$name.png" \
        --window-size="$w,$h" "file://$tmp/screen.html" 2>/dev/null
    rm -rf "$tmp"
    echo "screenshots/$name.png (${cols}x${rows})"
    ;;
stop)
    tmux kill-session -t "$session" 2>/dev/null || true
    ;;
*)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
