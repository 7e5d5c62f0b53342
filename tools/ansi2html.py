#!/usr/bin/env python3
"""ANSI (tmux capture-pane -e -p) → a standalone HTML page.

Each run of cells with the same attributes becomes one <span>; a
background colour is drawn only where the terminal set one (SGR 40-47,
100-107, 48;5;n, 48;2;r;g;b, or reverse video), never because the text is
bold or bright, so no false boxes appear behind bright text.

Usage: ansi2html.py [--cols N] [--title T] < capture.ansi > page.html
"""
import argparse
import html
import re
import sys

# xterm's default 16 colours.
BASE = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
]
FG, BG = "#d0d0d0", "#101010"


def colour256(n):
    if n < 16:
        return BASE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (v, v, v)


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = False
        self.dim = False
        self.italic = False
        self.underline = False
        self.reverse = False

    def key(self):
        return (self.fg, self.bg, self.bold, self.dim, self.italic, self.underline, self.reverse)

    def apply(self, params):
        ps = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(ps):
            p = ps[i]
            if p == 0:
                self.reset()
            elif p == 1:
                self.bold = True
            elif p == 2:
                self.dim = True
            elif p == 3:
                self.italic = True
            elif p == 4:
                self.underline = True
            elif p == 7:
                self.reverse = True
            elif p == 22:
                self.bold = self.dim = False
            elif p == 23:
                self.italic = False
            elif p == 24:
                self.underline = False
            elif p == 27:
                self.reverse = False
            elif 30 <= p <= 37:
                self.fg = BASE[p - 30]
            elif 90 <= p <= 97:
                self.fg = BASE[p - 90 + 8]
            elif p == 39:
                self.fg = None
            elif 40 <= p <= 47:
                self.bg = BASE[p - 40]
            elif 100 <= p <= 107:
                self.bg = BASE[p - 100 + 8]
            elif p == 49:
                self.bg = None
            elif p in (38, 48) and i + 1 < len(ps):
                if ps[i + 1] == 5 and i + 2 < len(ps):
                    c = colour256(ps[i + 2])
                    i += 2
                elif ps[i + 1] == 2 and i + 4 < len(ps):
                    c = "#%02x%02x%02x" % tuple(ps[i + 2:i + 5])
                    i += 4
                else:
                    c = None
                if p == 38:
                    self.fg = c
                else:
                    self.bg = c
                i += 1
            i += 1

    def style(self):
        fg, bg = self.fg, self.bg
        if self.reverse:
            fg, bg = (bg or BG), (fg or FG)
        css = []
        if fg:
            css.append("color:" + fg)
        if bg:
            css.append("background:" + bg)
        if self.bold:
            css.append("font-weight:bold")
        if self.dim:
            css.append("opacity:.6")
        if self.italic:
            css.append("font-style:italic")
        if self.underline:
            css.append("text-decoration:underline")
        return ";".join(css)


SGR = re.compile(r"\x1b\[([0-9;]*)m")
OTHER = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def convert(text, cols):
    st = State()
    out_lines = []
    for line in text.rstrip("\n").split("\n"):
        line = OTHER.sub("", line)
        spans, cur, key, width = [], [], st.key(), 0
        style = st.style()
        pos = 0
        for m in SGR.finditer(line):
            chunk = line[pos:m.start()]
            if chunk:
                cur.append(chunk)
                width += len(chunk)
            pos = m.end()
            st.apply(m.group(1))
            if st.key() != key:
                if cur:
                    spans.append((style, "".join(cur)))
                cur, key, style = [], st.key(), st.style()
        tail = line[pos:]
        if tail:
            cur.append(tail)
            width += len(tail)
        if cur:
            spans.append((style, "".join(cur)))
        # Pad with the line's last background, as the terminal shows it.
        if width < cols:
            spans.append((st.style() if st.bg or st.reverse else "", " " * (cols - width)))
        out_lines.append("".join(
            '<span style="%s">%s</span>' % (s, html.escape(t)) if s else html.escape(t)
            for s, t in spans))
    return "\n".join(out_lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--title", default="pxedeck")
    a = ap.parse_args()
    body = convert(sys.stdin.read(), a.cols)
    print("""<!doctype html><html><head><meta charset="utf-8"><title>%s</title>
<style>
html,body{margin:0;background:%s}
pre{margin:0;padding:8px;color:%s;background:%s;
font-family:"DejaVu Sans Mono","Liberation Mono",monospace;font-size:14px;line-height:17px;
font-variant-ligatures:none;white-space:pre}
</style></head><body><pre>%s</pre></body></html>""" % (html.escape(a.title), BG, FG, BG, body))


if __name__ == "__main__":
    main()
