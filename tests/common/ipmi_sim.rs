//! OpenIPMI's `ipmi_sim` as a real BMC on a LAN address, with its own
//! config, command file and state in a temp dir. Power and the boot device
//! belong to a `chassis_control` program the test writes (ipmi_sim refuses
//! `chassis bootdev` without one): ipmi_sim runs it as
//! `<prog> get power|boot` (prints `power:1`) and
//! `<prog> set power 1|0 | reset 1 | shutdown 1 | boot pxe|default`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{KillOnDrop, write_executable};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "s3cret-ipmi";

pub struct IpmiSim {
    pub dir: PathBuf,
    pub address: Ipv4Addr,
    pub port: u16,
    /// Where the password is, for a `bmc: password_file:`.
    pub password_file: PathBuf,
    _child: KillOnDrop,
}

/// A chassis_control program that keeps power and boot device in files
/// of `dir` and logs every call to `dir/calls`, one per line.
pub fn recording_chassis(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"#!/bin/sh
d={d}
echo "$*" >> $d/calls
op=$1; shift
if [ "$op" = get ]; then
  for p in "$@"; do
    case $p in
      power) echo "power:$(cat $d/power 2>/dev/null || echo 0)";;
      boot) echo "boot:$(cat $d/boot 2>/dev/null || echo default)";;
      *) echo "unknown $p"; exit 1;;
    esac
  done
  exit 0
fi
while [ $# -gt 0 ]; do
  case $1 in
    power) echo $2 > $d/power;;
    shutdown) echo 0 > $d/power;;
    reset) ;;
    boot) echo $2 > $d/boot;;
    *) echo "unknown $1"; exit 1;;
  esac
  shift 2
done
"#
    )
}

impl IpmiSim {
    /// Starts ipmi_sim on `address:port` (inside `netns` when given) with
    /// `chassis` as its chassis_control program. Waits until it answers.
    pub fn start(
        dir: &Path,
        address: Ipv4Addr,
        port: u16,
        netns: Option<&str>,
        chassis: &str,
    ) -> IpmiSim {
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let control = dir.join("chassis_control");
        write_executable(&control, chassis);
        let lan = format!(
            "name \"pxedeck-test\"\n\
             set_working_mc 0x20\n\
             \x20 startlan 1\n\
             \x20   addr {address} {port}\n\
             \x20   priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n\
             \x20   allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n\
             \x20   allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n\
             \x20 endlan\n\
             \x20 chassis_control \"{control}\"\n\
             \x20 user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight\n",
            control = control.display()
        );
        std::fs::write(dir.join("lan.conf"), lan).unwrap();
        std::fs::write(
            dir.join("bmc.emu"),
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        )
        .unwrap();
        let password_file = dir.join("bmc.pass");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "ipmi_sim"]);
                c
            }
            None => Command::new("ipmi_sim"),
        };
        let log = std::fs::File::create(dir.join("ipmi_sim.log")).unwrap();
        let child = cmd
            .arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("bmc.emu"))
            .arg("-s")
            .arg(dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("ipmi_sim (Debian package openipmi)");
        let sim = IpmiSim {
            dir: dir.to_path_buf(),
            address,
            port,
            password_file,
            _child: KillOnDrop(child),
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if sim
                .ipmitool(netns, &["power", "status"])
                .contains("Chassis Power is")
            {
                return sim;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "ipmi_sim did not answer on {address}:{port}:\n{}",
            std::fs::read_to_string(dir.join("ipmi_sim.log")).unwrap_or_default()
        );
    }

    /// Runs ipmitool against the simulator, as an operator would.
    pub fn ipmitool(&self, netns: Option<&str>, args: &[&str]) -> String {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "ipmitool"]);
                c
            }
            None => Command::new("ipmitool"),
        };
        let out = cmd
            .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H"])
            .arg(self.address.to_string())
            .args(["-p", &self.port.to_string(), "-U", USER, "-E"])
            .args(args)
            .env("IPMI_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("ipmitool (Debian package ipmitool)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// The chassis_control calls so far (the recording program's log).
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A UDP port free on loopback now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
