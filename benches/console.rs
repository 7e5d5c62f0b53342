//! What the console costs during a mass boot: 1,000 machines, 500 live
//! transfers with progress every 250 ms, DHCP chatter, drawn at the 20 fps
//! cap into a real crossterm backend whose output is counted (what would
//! cross the SSH link). Reports the time per frame (fold + draw), the CPU
//! share of one core at 20 fps, and bytes per second to the terminal.
//!
//! `cargo bench --bench console`

use std::io::Write;
use std::time::{Duration, Instant};

use pxedeck::boot::BootDecision;
use pxedeck::boot::arch::Firmware;
use pxedeck::dhcp::DhcpMessage;
use pxedeck::event::{DhcpSeen, Event, EventKind, KnownMachine, Protocol};
use pxedeck::ident::Mac;
use pxedeck::model::Model;
use pxedeck::tui::app::{App, Tab};
use pxedeck::tui::draw::draw;
use pxedeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Counts bytes instead of writing them.
#[derive(Default, Clone)]
struct Counter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn mac(n: usize) -> Mac {
    Mac([0x52, 0x54, 0x00, 0x10, (n >> 8) as u8, n as u8])
}

const FRAMES: u64 = 400; // 20 s at 20 fps

/// `MACHINES=10000 LIVE=5000` for the scale row of docs/benchmarks.md.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Size {
    machines: usize,
    live: usize,
}

fn size() -> Size {
    let machines = knob("MACHINES", 1000).clamp(1, 65_536);
    Size {
        machines,
        live: knob("LIVE", 500).min(machines),
    }
}

fn setup(size: &Size) -> App {
    let (machines, live) = (size.machines, size.live);
    let mut model = Model::default();
    let mut at = 1_000;
    let mut ev = |model: &mut Model, kind| {
        at += 1;
        model.apply(&Event { at, kind });
    };
    ev(
        &mut model,
        EventKind::InventoryReloaded {
            machines: (0..machines)
                .map(|n| KnownMachine {
                    hostname: format!("node-{n:04}"),
                    group: "rack".into(),
                    macs: vec![mac(n)],
                    ip: Some(std::net::Ipv4Addr::new(10, 1, (n >> 8) as u8, n as u8)),
                    profile: Some("p".into()),
                    install: true,
                })
                .collect(),
            profiles: vec!["p".into()],
            groups: vec!["rack".into()],
            group_info: vec![],
        },
    );
    for n in 0..live {
        ev(
            &mut model,
            EventKind::TransferStarted {
                id: n as u64,
                protocol: Protocol::Http,
                client: format!("10.1.{}.{}:4000", n >> 8, n & 255).parse().unwrap(),
                mac: Some(mac(n)),
                path: "os/initrd".into(),
                size: Some(50 << 20),
                blksize: None,
                windowsize: None,
            },
        );
    }
    let mut app = App::new(model, Theme::builtin(false), pxedeck::tui::Origin::Embedded);
    app.now = at;
    app
}

fn run(size: &Size, w: u16, h: u16, tab: Tab) -> (Duration, u64) {
    let mut app = setup(size);
    app.tab = tab;
    let counter = Counter::default();
    // A fixed viewport: the size must not come from whatever terminal
    // runs the bench.
    let mut terminal = Terminal::with_options(
        CrosstermBackend::new(counter.clone()),
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, w, h)),
        },
    )
    .unwrap();
    let mut at = app.model.now;
    let started = Instant::now();
    for frame in 0..FRAMES {
        at += 50;
        // Progress for every live transfer every 250 ms (5 frames).
        if frame % 5 == 0 {
            let samples = (0..size.live as u64)
                .map(|id| (id, (frame + 1) * 100_000 + id))
                .collect();
            app.apply(&Event {
                at,
                kind: EventKind::Progress { samples },
            });
        }
        // DHCP chatter: 20 packets a frame (400/s).
        for k in 0..20 {
            let n = (frame as usize * 20 + k) % size.machines;
            app.apply(&Event {
                at,
                kind: EventKind::DhcpSeen(DhcpSeen {
                    mac: mac(n),
                    xid: n as u32,
                    message: DhcpMessage::Request,
                    firmware: Some(Firmware::UefiX64),
                    ipxe: true,
                    vendor_class: None,
                    uuid: None,
                    relay: None,
                    relay_agent: None,
                    interface: None,
                    rule: None,
                    hostname: Some(format!("node-{n:04}")),
                    decision: BootDecision::Install {
                        profile: "p".into(),
                    },
                }),
            });
        }
        if frame % 20 == 0 {
            app.tick(at);
        }
        terminal.draw(|f| draw(f, &app)).unwrap();
    }
    let bytes = counter.0.load(std::sync::atomic::Ordering::Relaxed);
    (started.elapsed(), bytes)
}

fn main() {
    let size = size();
    let (machines, live) = (size.machines, size.live);
    println!(
        "console cost: {machines} machines, {live} live transfers, {FRAMES} frames (20 s at the 20 fps cap)"
    );
    println!(
        "{:<22} {:>12} {:>14} {:>16}",
        "view @ size", "ms / frame", "CPU @ 20 fps", "terminal B/s"
    );
    for (w, h) in [(80, 24), (200, 60)] {
        for (tab, name) in [(Tab::Machines, "machines"), (Tab::Transfers, "transfers")] {
            let mut times: Vec<(Duration, u64)> = (0..3).map(|_| run(&size, w, h, tab)).collect();
            times.sort();
            let (elapsed, bytes) = times[1];
            let per_frame = elapsed.as_secs_f64() * 1000.0 / FRAMES as f64;
            println!(
                "{:<22} {:>12.3} {:>13.1}% {:>16.0}",
                format!("{name} @ {w}x{h}"),
                per_frame,
                per_frame * 20.0 / 1000.0 * 100.0,
                bytes as f64 / (FRAMES as f64 / 20.0)
            );
        }
    }
}
