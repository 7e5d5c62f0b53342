//! The `pxedeck` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use pxedeck::boot::BootDecision;
use pxedeck::boot::decide::decide_known;
use pxedeck::config::Config;
use pxedeck::inventory::{self, LoadOptions};
use pxedeck::logging::LogFormat;

mod run;

/// jemalloc rather than glibc malloc: the tokio workers and the blocking
/// pool each grew a glibc arena that kept freed chunk buffers resident, so a
/// 500-machine boot peaked far above what it held at any moment (mimalloc,
/// also measured, peaked higher still: docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

    /// Log lines as text or as one JSON object per line (journald, Loki)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the boot services with the live console (the default)
    Console {
        /// Colour theme: default, light, high-contrast, or a file
        #[arg(long)]
        theme: Option<String>,
    },
    /// Run the boot services headless, logging to stdout (for systemd)
    Serve {
        /// Create the inventory folder if it does not exist (else a missing
        /// folder is an error: a typo must not start an empty inventory)
        #[arg(long)]
        init: bool,
        /// Log to this file instead of stdout (reopened on SIGHUP, for
        /// logrotate)
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
    },
    /// Open the console on a running `pxedeck serve`
    Attach {
        /// The server's API address [default: http://<the config's
        /// http.api_listen>, else http://127.0.0.1:8081]
        url: Option<String>,
        /// Bearer token for the API [default: the config's api_token, else
        /// the file its api_token_file names]
        #[arg(long, env = "PXEDECK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Colour theme: default, light, high-contrast, or a file
        /// [default: the config's theme]
        #[arg(long)]
        theme: Option<String>,
    },
    /// Try pxedeck on loopback with simulated machines: no root, no setup
    Demo {
        /// Unknown machines that wait to be adopted
        #[arg(long, default_value_t = 6)]
        unknown: usize,
        /// Seconds between machines powering on
        #[arg(long, default_value_t = 2.0)]
        every: f64,
        /// Keep the demo's files (inventory, leases, log) afterwards
        #[arg(long)]
        keep: bool,
        /// Colour theme: default, light, high-contrast, or a file
        /// [default: the config's theme]
        #[arg(long)]
        theme: Option<String>,
    },
    /// Mass-boot simulated machines against pxedeck and report timings
    Bench {
        /// Simulated machines
        #[arg(long, short = 'n', default_value_t = 100)]
        machines: usize,
        /// Boot loader size (TFTP), MiB
        #[arg(long, default_value_t = 1.0)]
        loader_mib: f64,
        /// Kernel size (HTTP), MiB
        #[arg(long, default_value_t = 10.0)]
        kernel_mib: f64,
        /// Initrd size (HTTP), MiB
        #[arg(long, default_value_t = 50.0)]
        initrd_mib: f64,
        /// Spread power-on over this many seconds
        #[arg(long, default_value_t = 1.0)]
        spread: f64,
        /// Write the bench's world (config, inventory, boot root) to DIR and
        /// stop: serve it yourself, then run with --target
        #[arg(long, value_name = "DIR")]
        prepare: Option<PathBuf>,
        /// Boot against a running server's DHCP address (a world made with
        /// --prepare, passed again with --world)
        #[arg(long, value_name = "ADDR", requires = "world")]
        target: Option<std::net::SocketAddr>,
        /// The world the target serves
        #[arg(long, value_name = "DIR")]
        world: Option<PathBuf>,
        /// Reach the target as a DHCP relay agent with this address (binds
        /// port 67: root). For servers that answer only relays or port 68,
        /// such as dnsmasq; make the relay's subnet local
        /// (`ip route add local`) and machines send from their leases
        #[arg(long, value_name = "IP", requires = "target")]
        relay: Option<std::net::Ipv4Addr>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Validate the inventory; print every problem with file and line
    Check {
        /// Inventory folder [default: the config's `inventory`, ./nodes]
        dir: Option<PathBuf>,
    },
    /// Add machines from a CSV (serial, asset, mac, hostname, group,
    /// profile, ip, install): a purchase order or a rack plan becomes one
    /// machine file per row, written and committed like an adoption.
    /// Every bad row is printed as file:line; nothing is written then
    Import {
        /// The CSV file (a header line names the columns)
        csv: PathBuf,
        /// Print the files that would be written, and write nothing
        #[arg(long)]
        dry_run: bool,
        /// An empty `install` cell means true (default: false, nothing is
        /// reimaged unless its row says so)
        #[arg(long)]
        install: bool,
        /// Inventory folder [default: the config's `inventory`, ./nodes]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print what one machine would be served: the decision, its iPXE
    /// script (kernel command line included), each installer config, and
    /// its effective values, each annotated with the file and line that
    /// set it
    Render {
        /// A MAC address (any notation), hostname, UUID or serial number
        machine: String,
        /// Inventory folder [default: the config's `inventory`, ./nodes]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script (e.g. `pxedeck completions bash >
    /// /etc/bash_completion.d/pxedeck`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, roff (e.g. `pxedeck man > /usr/local/share/man/man1/pxedeck.1`)
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Console { theme: None });
    // Completions and the man page need no config; attach and the demo
    // read one when given (`-c`) or present, and go on without one;
    // everything else needs a valid one.
    let optional = || match Config::load(cli.config.as_deref()) {
        Ok(c) => Some(c),
        Err(e) if cli.config.is_some() => {
            eprintln!("pxedeck: invalid configuration: {e}");
            None
        }
        Err(e) => {
            eprintln!("pxedeck: ignoring ./pxedeck.yaml: {e}");
            Some(Config::builtin())
        }
    };
    let config = match &command {
        Command::Completions { .. } | Command::Man => Config::builtin(),
        Command::Demo { .. } | Command::Attach { .. } => match optional() {
            Some(c) => c,
            None => return ExitCode::from(2),
        },
        _ => match Config::load(cli.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pxedeck: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match command {
        Command::Check { dir } => check(&config, dir),
        Command::Render { machine, dir } => render(&config, dir, &machine),
        Command::Import {
            csv,
            dry_run,
            install,
            dir,
        } => import(&config, dir, &csv, dry_run, install),
        Command::Console { theme } => {
            if let Some(code) = inventory_missing(&config, false) {
                return code;
            }
            runtime(|| run::console(config, theme, cli.log_format))
        }
        Command::Serve { init, log_file } => {
            if let Some(code) = inventory_missing(&config, init) {
                return code;
            }
            runtime(|| {
                run::serve(
                    config,
                    run::ServeLog {
                        format: cli.log_format,
                        file: log_file,
                    },
                )
            })
        }
        Command::Attach { url, token, theme } => {
            runtime(|| run::attach(url, token, &config, theme))
        }
        Command::Demo {
            unknown,
            every,
            keep,
            theme,
        } => {
            let theme = theme.or_else(|| cli.config.is_some().then(|| config.theme.clone()));
            runtime(|| run::demo(unknown, every, keep, theme, cli.log_format))
        }
        Command::Bench {
            machines,
            loader_mib,
            kernel_mib,
            initrd_mib,
            spread,
            prepare,
            target,
            world,
            relay,
            json,
        } => {
            let mib = |m: f64| (m * 1024.0 * 1024.0) as u64;
            let opts = pxedeck::sim::bench::BenchOptions {
                machines,
                loader_size: mib(loader_mib),
                kernel_size: mib(kernel_mib),
                initrd_size: mib(initrd_mib),
                spread: std::time::Duration::from_secs_f64(spread),
                link_rate: None,
                relay,
            };
            runtime(|| run::bench(opts, prepare, target, world, json))
        }
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "pxedeck", &mut text);
            out(&String::from_utf8_lossy(&text));
            ExitCode::SUCCESS
        }
        Command::Man => {
            let mut text = Vec::new();
            if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut text) {
                eprintln!("pxedeck: cannot render the man page: {e}");
                return ExitCode::FAILURE;
            }
            out(&String::from_utf8_lossy(&text));
            ExitCode::SUCCESS
        }
    }
}

/// A missing inventory folder stops `serve` and the console with one
/// clear line, unless `--init` asks for it to be made.
fn inventory_missing(config: &Config, init: bool) -> Option<ExitCode> {
    let dir = &config.inventory;
    if dir.is_dir() {
        return None;
    }
    if init {
        return match std::fs::create_dir_all(dir) {
            Ok(()) => {
                eprintln!("pxedeck: created the inventory folder {}", dir.display());
                None
            }
            Err(e) => {
                eprintln!(
                    "pxedeck: cannot create the inventory folder {}: {e}",
                    dir.display()
                );
                Some(ExitCode::from(2))
            }
        };
    }
    eprintln!(
        "pxedeck: the inventory folder {} does not exist (set `inventory:` in the config, \
         or pass --init to create it)",
        dir.display()
    );
    Some(ExitCode::from(2))
}

/// Runs an async command on a multi-threaded runtime; errors are printed
/// as one line and exit 1.
fn runtime<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pxedeck: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(f());
    // Running downloads end with the runtime; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pxedeck: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_options(config: &Config) -> LoadOptions {
    LoadOptions {
        pools: config.dhcp.pools.clone(),
        server: Some(config.address),
    }
}

fn check(config: &Config, dir: Option<PathBuf>) -> ExitCode {
    let root = dir.unwrap_or_else(|| config.inventory.clone());
    let started = std::time::Instant::now();
    let loaded = inventory::load(&root, &load_options(config));
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
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
    for warning in missing_loaders(config, inv) {
        eprintln!("warning: {warning}");
    }
    if !inv.rules.is_empty() {
        let auto = inv
            .rules
            .iter()
            .filter(|r| r.hit.mode == inventory::rules::RuleMode::Auto)
            .count();
        eprintln!(
            "{} rule(s) for unknown machines ({auto} auto), tried in this order, the first match wins:",
            inv.rules.len()
        );
        for r in &inv.rules {
            eprintln!(
                "  {}: {} → {} ({}, {}{})",
                r.hit.rule,
                r.hit.mode.name(),
                if r.hit.group.is_empty() {
                    "/"
                } else {
                    &r.hit.group
                },
                r.hit.profile,
                r.hit.hostname,
                if r.hit.install { ", install" } else { "" }
            );
        }
    }
    ExitCode::SUCCESS
}

/// The signed loaders some machine needs that are not installed: the x64
/// pair for every machine on the GRUB chain (and unknown machines under
/// `unknown.loader: grub`), the arm64 pair for `arch: arm64` machines.
fn missing_loaders(config: &Config, inv: &inventory::Inventory) -> Vec<String> {
    use pxedeck::boot::arch::Firmware;
    use pxedeck::boot::decide::Chain;
    let arm =
        |m: &&inventory::Machine| matches!(m.arch, Some(Firmware::UefiArm64 | Firmware::HttpArm64));
    let x64: Vec<&str> = inv
        .machines
        .iter()
        .filter(|m| m.chain == Chain::Grub && !arm(m))
        .map(|m| m.hostname.as_str())
        .chain((config.unknown_chain == Chain::Grub).then_some("unknown machines"))
        .collect();
    let arm64: Vec<&str> = inv
        .machines
        .iter()
        .filter(arm)
        .map(|m| m.hostname.as_str())
        .collect();
    let l = &config.loaders;
    let mut out = Vec::new();
    for (who, path, package) in [
        (&x64, &l.shim_x64, "shim-signed"),
        (&x64, &l.grub_x64, "grub-efi-amd64-signed"),
        (&arm64, &l.shim_arm64, "shim-signed:arm64"),
        (&arm64, &l.grub_arm64, "grub-efi-arm64-signed:arm64"),
    ] {
        if who.is_empty() || path.is_file() {
            continue;
        }
        let shown: Vec<&str> = who.iter().take(3).copied().collect();
        let more = who.len().saturating_sub(3);
        out.push(format!(
            "{} not installed, needed by {}{} on the shim/GRUB chain \
             (apt-get install {package}, or set loaders: in the config)",
            path.display(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
        ));
    }
    out
}

/// Writes command output; a closed pipe (`pxedeck render x | head`) is not
/// an error worth a panic.
/// `pxedeck import`: the CSV read within its bounds, every row checked
/// against the tree and the others (file:line), then the files written by
/// the inventory writer (validated with the tree, atomic) and committed
/// when the inventory is in git.
fn import(
    config: &Config,
    dir: Option<PathBuf>,
    csv: &std::path::Path,
    dry_run: bool,
    install: bool,
) -> ExitCode {
    use std::io::Read;
    let root = dir.unwrap_or_else(|| config.inventory.clone());
    let mut text = String::new();
    let read = std::fs::File::open(csv).and_then(|f| {
        // One byte past the bound, so a longer file is refused, not cut.
        f.take(inventory::import::MAX_BYTES as u64 + 1)
            .read_to_string(&mut text)
    });
    if let Err(e) = read {
        eprintln!("pxedeck: {}: {e}", csv.display());
        return ExitCode::from(2);
    }
    let loaded = inventory::load(&root, &load_options(config));
    if !loaded.is_ok() {
        for p in &loaded.problems {
            eprintln!("{p}");
        }
        eprintln!(
            "pxedeck: {} has problems; fix them before importing",
            root.display()
        );
        return ExitCode::from(1);
    }
    let adoptions = match inventory::import::parse(&text, &loaded.inventory, install) {
        Ok(a) => a,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}:{}: {}", csv.display(), e.line, e.message);
            }
            eprintln!(
                "pxedeck: {} bad row{}; nothing written",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return ExitCode::from(1);
        }
    };
    if dry_run {
        for a in &adoptions {
            let rel = std::path::Path::new(&a.group).join(format!("{}.yaml", a.hostname));
            out(&format!(
                "── {} ──\n{}",
                rel.display(),
                inventory::machine_file_text(a)
            ));
        }
        out(&format!(
            "{} machine{} would be written (dry run: nothing written)\n",
            adoptions.len(),
            if adoptions.len() == 1 { "" } else { "s" }
        ));
        return ExitCode::SUCCESS;
    }
    let service = inventory::InventoryService::new(&root, load_options(config), loaded.inventory);
    let written = match service.adopt(&adoptions) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("pxedeck: nothing written: {e}");
            return ExitCode::from(1);
        }
    };
    let mut committed = String::new();
    if config.git.commit
        && let Some(repo) = pxedeck::git::Repo::discover(&root, config.git.timeout)
    {
        let paths: Vec<PathBuf> = written.iter().map(|rel| root.join(rel)).collect();
        let message = format!(
            "import {} machine{} from {}",
            written.len(),
            if written.len() == 1 { "" } else { "s" },
            csv.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        match repo.commit(&paths, &message, &config.git.author) {
            Ok(Some(hash)) => committed = format!(", committed as {hash}"),
            Ok(None) => {}
            Err(e) => eprintln!("warning: the files are written but not committed: {e}"),
        }
    }
    for rel in &written {
        out(&format!("{}\n", root.join(rel).display()));
    }
    out(&format!(
        "{} machine{} imported{committed}\n",
        written.len(),
        if written.len() == 1 { "" } else { "s" }
    ));
    ExitCode::SUCCESS
}

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
    // The very decision DHCP and HTTP take, described.
    let boots = match (decide_known(m), &m.boot) {
        (BootDecision::Install { .. }, Some(b)) => b.to_string(),
        _ if !m.install => "local disk (install: false)".to_string(),
        _ if m.boot.is_none() => "local disk (nothing to boot: no boot section)".to_string(),
        _ => "local disk (local profile)".to_string(),
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
    let served = served(config, inv, m);
    out(&served.text);
    if loaded.is_ok() && served.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `render` adds after the values: the script and each config.
struct Served {
    text: String,
    /// Every config rendered (a template that fails is an exit 1).
    ok: bool,
}

/// The machine's iPXE script (its kernel command line in it) and each
/// installer config, rendered as HTTP serves them, with the capability
/// slots shown as placeholders (as `GET /api/v1/machines/<mac>/served`).
fn served(config: &Config, inv: &inventory::Inventory, m: &inventory::Machine) -> Served {
    use pxedeck::boot::decide::http_base;
    use pxedeck::boot::render::{self as boot_render, Urls};
    let urls = Urls::new(http_base(config.address, config.http.port));
    let mac = m
        .macs
        .first()
        .copied()
        .unwrap_or(pxedeck::ident::Mac([0; 6]));
    let decision = decide_known(m);
    let script = boot_render::script(inv, Some(m), &decision, &mac, &urls);
    let mut text = format!(
        "\n# ── iPXE script ({}) ──\n{}",
        urls.entry(&mac),
        script.text
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut ok = true;
    for name in m.configs.keys() {
        text.push_str(&format!(
            "\n# ── config {name} ({}/{name}) ──\n",
            urls.config(&m.hostname)
        ));
        match boot_render::config(inv, m, name, &urls) {
            Some(Ok(rendered)) => text.push_str(&rendered.text),
            Some(Err(e)) => {
                ok = false;
                text.push_str(&format!("# cannot render: {e}"));
            }
            None => {}
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    Served { text, ok }
}
