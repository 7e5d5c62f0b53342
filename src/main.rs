//! The `pxedeck` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use pxedeck::config::Config;
use pxedeck::inventory::{self, LoadOptions};

/// A terminal console for bare-metal provisioning: DHCP, proxyDHCP, TFTP and
/// HTTP boot services with a live view of every boot, and a YAML inventory
/// kept in git.
#[derive(Parser)]
#[command(name = "pxedeck", version, about, long_about = None)]
struct Cli {
    /// Configuration file [default: ./pxedeck.yaml if it exists, else
    /// built-in defaults]
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the boot services with the live console (the default)
    Console,
    /// Run the boot services headless, logging to stdout (for systemd)
    Serve,
    /// Open the console on a running `pxedeck serve`
    Attach {
        /// The server's API address
        #[arg(default_value = "http://127.0.0.1:8081")]
        url: String,
    },
    /// Try pxedeck on loopback with simulated machines: no root, no setup
    Demo,
    /// Mass-boot simulated machines against pxedeck and report timings
    Bench,
    /// Validate the inventory; print every problem with file and line
    Check {
        /// Inventory folder [default: the config's `inventory`, ./nodes]
        dir: Option<PathBuf>,
    },
    /// Print what one machine would be served: its effective values, each
    /// annotated with the file and line that set it
    Render {
        /// A MAC address (any notation), hostname, UUID or serial number
        machine: String,
        /// Inventory folder [default: the config's `inventory`, ./nodes]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pxedeck: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Console) {
        Command::Check { dir } => check(&config, dir),
        Command::Render { machine, dir } => render(&config, dir, &machine),
        Command::Console => not_yet("the console"),
        Command::Serve => not_yet("serve"),
        Command::Attach { .. } => not_yet("attach"),
        Command::Demo => not_yet("demo"),
        Command::Bench => not_yet("bench"),
    }
}

/// Subcommands whose implementation has not landed say so, and fail.
fn not_yet(what: &str) -> ExitCode {
    eprintln!("pxedeck: {what} is not available yet");
    ExitCode::from(3)
}

fn load_options(config: &Config) -> LoadOptions {
    LoadOptions {
        pools: config.dhcp.pools.clone(),
    }
}

fn check(config: &Config, dir: Option<PathBuf>) -> ExitCode {
    let root = dir.unwrap_or_else(|| config.inventory.clone());
    let started = std::time::Instant::now();
    let loaded = inventory::load(&root, &load_options(config));
    if !loaded.is_ok() {
        let listing: String = loaded.problems.iter().map(|p| format!("{p}\n")).collect();
        out(&listing);
        eprintln!(
            "{}: {} problem{}",
            root.display(),
            loaded.problems.len(),
            if loaded.problems.len() == 1 { "" } else { "s" }
        );
        return ExitCode::from(1);
    }
    let inv = &loaded.inventory;
    out(&format!(
        "{}: ok — {} machines in {} groups, {} profiles ({} ms)\n",
        root.display(),
        inv.machines.len(),
        inv.groups.len(),
        inv.profiles.len(),
        started.elapsed().as_millis()
    ));
    ExitCode::SUCCESS
}

/// Writes command output; a closed pipe (`pxedeck render x | head`) is not
/// an error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn render(config: &Config, dir: Option<PathBuf>, query: &str) -> ExitCode {
    let root = dir.unwrap_or_else(|| config.inventory.clone());
    let loaded = inventory::load(&root, &load_options(config));
    for p in &loaded.problems {
        eprintln!("warning: {p}");
    }
    let inv = &loaded.inventory;
    let Some(m) = inv.find(query) else {
        eprintln!("pxedeck: no machine matches {query:?} (MAC, hostname, UUID or serial)");
        return ExitCode::from(1);
    };
    let macs: Vec<String> = m.macs.iter().map(ToString::to_string).collect();
    let boots = match (&m.boot, m.install) {
        (_, false) => "local disk (install: false)".to_string(),
        (Some(b), true) => b.to_string(),
        (None, true) => "nothing: no boot section".to_string(),
    };
    out(&format!(
        "# {} — {}\n# group:   {}\n# mac:     {}\n# profile: {}\n# boots:   {}\n\
         # effective values (each with the file:line that set it):\n{}",
        m.hostname,
        inv.file(m.file).display(),
        m.group_label(),
        if macs.is_empty() {
            "-".into()
        } else {
            macs.join(", ")
        },
        m.profile.as_deref().unwrap_or("-"),
        boots,
        inventory::annotated_yaml(inv, &m.values),
    ));
    if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
