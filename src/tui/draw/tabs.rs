//! The tab bar, with the open detail and the active filter, sort and marks.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Sort, TABS, Tab};

/// The tab label under column `x`, as `draw` places them.
pub(super) fn at(x: u16) -> Option<usize> {
    let mut left = 0u16;
    for (i, (_, name)) in TABS.iter().enumerate() {
        let width = format!(" {} {name} ", i + 1).chars().count() as u16;
        if x >= left && x < left + width {
            return Some(i);
        }
        left += width;
    }
    None
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, (tab, name)) in TABS.iter().enumerate() {
        let style = if *tab == app.tab && app.detail.is_none() {
            t.accent().add_modifier(Modifier::REVERSED)
        } else {
            t.muted()
        };
        spans.push(Span::styled(format!(" {} {name} ", i + 1), style));
    }
    if app.detail.is_some() {
        spans.push(Span::styled(
            " ▸ detail ",
            t.accent().add_modifier(Modifier::REVERSED),
        ));
    }
    let mut extra = Vec::new();
    if !app.filter.is_empty() {
        extra.push(format!("filter: {}", app.filter));
    }
    if app.tab == Tab::Machines && app.sort != Sort::Seen {
        extra.push(format!("sort: {}", app.sort.label()));
    }
    if !app.marked.is_empty() {
        extra.push(format!("{} marked", app.marked.len()));
    }
    if !extra.is_empty() {
        spans.push(Span::styled(format!("  {}", extra.join(" · ")), t.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
