//! The Inventory view: counts, problems of the last reload, groups with
//! their naming pattern and profile, and the profiles.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::format::{age, table_block};
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
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
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(table_block(app, " Inventory ".into())),
        area,
    );
}
