//! Just enough of iPXE's script language to follow what pxedeck serves:
//! `kernel`, `initrd`, `boot`, `chain`, `exit`/`sanboot`, `sleep` before a
//! re-chain (the hold loop) and `shell`. Control flow (`goto`, retries) is
//! not interpreted: the simulator performs each fetch once and reports
//! failures itself.

/// What a script tells the machine to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Fetch the kernel and initrds, then boot with the command line.
    Boot {
        kernel: String,
        cmdline: String,
        initrds: Vec<String>,
    },
    /// Fetch another script, after waiting `after_secs` (hold loop).
    Chain { url: String, after_secs: u32 },
    /// Boot the local disk.
    Local,
    /// The script gave up (an iPXE shell).
    Shell,
}

/// Settings iPXE would expand in URLs, as the simulated machine has them.
pub struct Settings<'a> {
    /// The MAC as `hexhyp` (`52-54-00-…`).
    pub mac_hyphen: &'a str,
    pub uuid: &'a str,
}

fn expand(text: &str, s: &Settings<'_>) -> String {
    text.replace("${netX/mac:hexhyp}", s.mac_hyphen)
        .replace("${uuid:uristring}", s.uuid)
        .replace("${uuid}", s.uuid)
        .replace("${asset:uristring}", "")
        .replace("${manufacturer:uristring}", "QEMU")
        .replace("${product:uristring}", "pxedeck-sim")
        .replace("${netX/chip:uristring}", "virtio-net")
        .replace("${netX/busid}", "")
        .replace("${serial:uristring}", "")
        .replace("${board-serial:uristring}", "")
        .replace("${buildarch:uristring}", "x86_64")
        .replace("${platform:uristring}", "efi")
}

/// The first argument after the command and its options (`--name x`
/// takes a value; `--replace`, `--autofree` do not), and the rest up to an
/// `&&`/`||`.
fn args(line: &str) -> (Option<&str>, String) {
    let mut words = line.split_whitespace().skip(1).peekable();
    while let Some(w) = words.peek() {
        match *w {
            "--name" | "-n" | "--timeout" | "-t" => {
                words.next();
                words.next();
            }
            w if w.starts_with('-') => {
                words.next();
            }
            _ => break,
        }
    }
    let first = words.next();
    let rest: Vec<&str> = words.take_while(|w| *w != "&&" && *w != "||").collect();
    (first, rest.join(" "))
}

/// Reads a script and returns the action it leads to.
pub fn follow(script: &str, settings: &Settings<'_>) -> Result<Next, String> {
    if !script.starts_with("#!ipxe") {
        return Err("not an iPXE script".into());
    }
    let mut kernel: Option<(String, String)> = None;
    let mut initrds = Vec::new();
    let mut slept = 0u32;
    for raw in script.lines() {
        let line = raw.trim();
        let command = line.split_whitespace().next().unwrap_or("");
        match command {
            "kernel" => {
                let (url, rest) = args(line);
                let url = url.ok_or("kernel without a URL")?;
                kernel = Some((expand(url, settings), rest));
            }
            "initrd" => {
                let (url, _) = args(line);
                initrds.push(expand(url.ok_or("initrd without a URL")?, settings));
            }
            "boot" => {
                let (kernel, cmdline) = kernel.take().ok_or("boot without a kernel")?;
                return Ok(Next::Boot {
                    kernel,
                    cmdline,
                    initrds,
                });
            }
            "chain" => {
                let (url, _) = args(line);
                return Ok(Next::Chain {
                    url: expand(url.ok_or("chain without a URL")?, settings),
                    after_secs: slept,
                });
            }
            "sleep" => {
                slept = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
            }
            "exit" | "sanboot" => return Ok(Next::Local),
            "shell" => return Ok(Next::Shell),
            _ => {}
        }
    }
    Err("the script ends without booting".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings<'static> = Settings {
        mac_hyphen: "52-54-00-00-00-01",
        uuid: "u",
    };

    #[test]
    fn follows_pxedecks_scripts() {
        let install = "#!ipxe\necho hi\nimgfree\nset tries:int32 0\n:fetch0\n\
            kernel --name kernel http://h/k a=1 b=2 initrd=initrd0 && goto fetched0 ||\n\
            inc tries\n:fetched0\ninitrd --name initrd0 http://h/i && goto f ||\n\
            boot || goto failed\n:failed\nshell\n";
        assert_eq!(
            follow(install, &S),
            Ok(Next::Boot {
                kernel: "http://h/k".into(),
                cmdline: "a=1 b=2 initrd=initrd0".into(),
                initrds: vec!["http://h/i".into()],
            })
        );
        let hold = "#!ipxe\n:wait\nsleep 5\nchain --replace --autofree http://h/boot.ipxe?mac=x || goto wait\n";
        assert_eq!(
            follow(hold, &S),
            Ok(Next::Chain {
                url: "http://h/boot.ipxe?mac=x".into(),
                after_secs: 5
            })
        );
        let identify = "#!ipxe\nchain --replace --autofree http://h/boot.ipxe?mac=${netX/mac:hexhyp}&uuid=${uuid:uristring} || shell\n";
        assert_eq!(
            follow(identify, &S),
            Ok(Next::Chain {
                url: "http://h/boot.ipxe?mac=52-54-00-00-00-01&uuid=u".into(),
                after_secs: 0
            })
        );
        assert_eq!(follow("#!ipxe\nexit\n", &S), Ok(Next::Local));
        assert!(follow("<html>", &S).is_err());
    }
}
