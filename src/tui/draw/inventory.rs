//! The Inventory view: counts, problems of the last reload, groups with
//! their naming pattern and profile, and the profiles.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::format::{age, table_block};
use crate::tui::app::App;

/// `git main → origin/main · 2 uncommitted · ↑1 ↓0 · push failed: …`
fn git_line<'a>(app: &App, git: &'a crate::event::GitState) -> Line<'a> {
    let t = &app.theme;
    let mut spans = vec![Span::styled(
        format!(
            "git {}{}",
            git.branch.as_deref().unwrap_or("(detached HEAD)"),
            git.upstream
                .as_deref()
                .map(|u| format!(" → {u}"))
                .unwrap_or_default()
        ),
        t.text(),
    )];
    let dirty = if git.uncommitted > 0 {
        t.warn()
    } else {
        t.muted()
    };
    spans.push(Span::styled(
        format!(" · {} uncommitted", git.uncommitted),
        dirty,
    ));
    if git.upstream.is_some() {
        spans.push(Span::styled(
            format!(" · ↑{} ↓{}", git.ahead, git.behind),
            t.muted(),
        ));
    }
    if let Some(e) = &git.error {
        spans.push(Span::styled(format!(" · {e}"), t.error()));
    }
    Line::from(spans)
}

/// The view's lines, for the draw and for how far it scrolls.
fn lines(app: &App) -> Vec<Line<'_>> {
    let t = &app.theme;
    let inv = &app.model.inventory;
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!(
                "{} machines in {} groups, {} profiles",
                inv.machines,
                inv.groups.len(),
                inv.profiles.len()
            ),
            t.text(),
        ),
        Span::styled(
            format!("  · last reload {} ago", age(app, inv.last_reload)),
            t.muted(),
        ),
    ])];
    if let Some(git) = &inv.git {
        lines.push(git_line(app, git));
    }
    lines.push(Line::default());
    if !inv.problems.is_empty() {
        lines.push(Line::from(Span::styled(
            format!(
                "{} problem(s); the last good inventory keeps serving:",
                inv.problems.len()
            ),
            t.error(),
        )));
        for p in &inv.problems {
            lines.push(Line::from(Span::styled(format!("  {p}"), t.error())));
        }
        lines.push(Line::default());
    }
    lines.push(Line::from(Span::styled("Groups", t.accent())));
    for g in &inv.groups {
        let count = app
            .model
            .machines
            .iter()
            .filter(|m| m.group.as_deref() == Some(g.name.as_str()))
            .count();
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:<20}", if g.name.is_empty() { "/" } else { &g.name }),
                t.text(),
            ),
            Span::styled(
                format!(
                    " {count:>3} machines  profile {:<16} names {}",
                    g.profile.as_deref().unwrap_or("-"),
                    g.hostname_pattern.as_deref().unwrap_or("-")
                ),
                t.muted(),
            ),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Profiles", t.accent())));
    lines.push(Line::from(Span::styled(
        format!("  {}", inv.profiles.join(", ")),
        t.text(),
    )));
    lines
}

/// How far the view scrolls on a screen of `area`: its last line at the
/// bottom (lines that wrap aside).
pub fn scroll_positions(app: &App, area: Rect) -> usize {
    let room = super::table_rows(app, area) + 1;
    lines(app).len().saturating_sub(room) + 1
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let lines = lines(app);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            // Scrolled by the arrows and the wheel (the tab's cursor).
            .scroll((app.cursor() as u16, 0))
            .block(table_block(app, " Inventory ".into())),
        area,
    );
}
