//! `pxedeck import`: a CSV of machines (a purchase order, a rack plan)
//! read into [`Adoption`]s for the inventory writer, each bad row reported
//! as `file:line: message`.
//!
//! The header names the columns, in any order: `serial`, `asset`, `mac`,
//! `hostname`, `group`, `profile`, `ip`, `install` (`hostname` and
//! `profile` required, and one of `serial`, `asset`, `mac` per row). Fields
//! may be quoted (RFC 4180, `""` inside quotes); blank lines and lines
//! starting with `#` are skipped. Bounded: [`MAX_BYTES`] of text,
//! [`MAX_ROWS`] rows, [`MAX_FIELD`] bytes a field.
//!
//! Pure: the caller reads the file and writes through the
//! [`InventoryService`](super::InventoryService), which validates the whole
//! tree with the new files before it writes any.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::validate::{check_group, check_hostname, check_mac};
use super::{Adoption, Inventory};
use crate::boot::identity::{MAX_VALUE, meaningful};
use crate::ident::Mac;

/// The most text an import reads (1 MiB: ten thousand rows fit easily).
pub const MAX_BYTES: usize = 1 << 20;
/// The most machines one import adds.
pub const MAX_ROWS: usize = 10_000;
/// The longest field, in bytes.
pub const MAX_FIELD: usize = 256;

const COLUMNS: [&str; 8] = [
    "serial", "asset", "mac", "hostname", "group", "profile", "ip", "install",
];

/// A problem at a line of the CSV (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

/// Splits one line into fields: commas, RFC 4180 quotes.
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err("text after a closing quote".into());
            }
            (false, c) => field.push(c),
        }
        if field.len() > MAX_FIELD {
            return Err(format!("a field longer than {MAX_FIELD} bytes"));
        }
    }
    if quoted {
        return Err("a quoted field that does not end on its line".into());
    }
    out.push(field);
    Ok(out.into_iter().map(|f| f.trim().to_string()).collect())
}

fn install_flag(text: &str, default: bool) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!("install {other:?} is not true or false")),
    }
}

fn tag(what: &str, value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_VALUE || !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(format!(
            "{what} must be printable ASCII of at most {MAX_VALUE} bytes"
        ));
    }
    if !meaningful(value) {
        return Err(format!(
            "{what} {value:?} is a firmware placeholder, not one machine's"
        ));
    }
    Ok(Some(value.to_string()))
}

/// Reads the CSV `text` into adoptions, or every problem found. Rows that
/// collide with each other or with a machine of `inv` (hostname, serial,
/// asset tag, MAC, IP) are refused, naming the other. `install` is what an
/// empty `install` cell means (`--install`); without it, nothing imported
/// is reimaged unless its row says so.
pub fn parse(text: &str, inv: &Inventory, install: bool) -> Result<Vec<Adoption>, Vec<RowError>> {
    let err = |line, message: String| RowError { line, message };
    if text.len() > MAX_BYTES {
        return Err(vec![err(
            0,
            format!("{} bytes; at most {MAX_BYTES} are read", text.len()),
        )]);
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(vec![err(
            1,
            "no header line (serial,asset,mac,hostname,group,profile,ip)".into(),
        )]);
    };
    let header = fields(header).map_err(|e| vec![err(header_line, e)])?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(vec![err(
                header_line,
                format!("unknown column {name:?} (known: {})", COLUMNS.join(", ")),
            )]);
        };
        if index.insert(known, i).is_some() {
            return Err(vec![err(header_line, format!("column {name} twice"))]);
        }
    }
    for required in ["hostname", "profile"] {
        if !index.contains_key(required) {
            return Err(vec![err(header_line, format!("no {required} column"))]);
        }
    }
    if !["serial", "asset", "mac"]
        .iter()
        .any(|c| index.contains_key(c))
    {
        return Err(vec![err(
            header_line,
            "no serial, asset or mac column".into(),
        )]);
    }

    let mut out = Vec::new();
    let mut errors = Vec::new();
    // Values taken by earlier rows: (kind, value) → line.
    let mut taken: HashMap<(&'static str, String), usize> = HashMap::new();
    for (line, text) in lines {
        if out.len() + errors.len() >= MAX_ROWS {
            errors.push(err(line, format!("more than {MAX_ROWS} rows")));
            break;
        }
        match row(text, &index, header.len(), install) {
            Ok(a) => {
                let mut clash = None;
                for (kind, value) in keys(&a) {
                    if let Some(owner) = owner_in(inv, kind, &value) {
                        clash = Some(format!("{kind} {value} is already {owner}"));
                    } else if let Some(first) = taken.get(&(kind, value.clone())) {
                        clash = Some(format!("{kind} {value} is also on line {first}"));
                    }
                    if clash.is_some() {
                        break;
                    }
                }
                match clash {
                    Some(message) => errors.push(err(line, message)),
                    None => {
                        for (kind, value) in keys(&a) {
                            taken.insert((kind, value), line);
                        }
                        out.push(a);
                    }
                }
            }
            Err(message) => errors.push(err(line, message)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![err(
            header_line,
            "no machines below the header".into(),
        )]);
    }
    Ok(out)
}

fn keys(a: &Adoption) -> Vec<(&'static str, String)> {
    let mut k = vec![("hostname", a.hostname.to_ascii_lowercase())];
    k.extend(a.serial.iter().map(|s| ("serial", s.clone())));
    k.extend(a.asset.iter().map(|s| ("asset tag", s.clone())));
    k.extend(a.macs.iter().map(|m| ("MAC", m.to_string())));
    k.extend(a.ip.iter().map(|ip| ("IP", ip.to_string())));
    k
}

fn owner_in(inv: &Inventory, kind: &str, value: &str) -> Option<String> {
    let m = match kind {
        "hostname" => inv
            .machines
            .iter()
            .find(|m| m.hostname.eq_ignore_ascii_case(value)),
        "serial" => inv.by_serial(value),
        "asset tag" => inv.by_asset(value),
        "MAC" => value.parse::<Mac>().ok().and_then(|m| inv.by_mac(&m)),
        "IP" => value.parse::<Ipv4Addr>().ok().and_then(|ip| inv.by_ip(ip)),
        _ => None,
    }?;
    Some(format!("{}'s ({})", m.hostname, inv.file(m.file).display()))
}

fn row(
    text: &str,
    index: &HashMap<&str, usize>,
    width: usize,
    install: bool,
) -> Result<Adoption, String> {
    let cells = fields(text)?;
    if cells.len() != width {
        return Err(format!("{} fields; the header has {width}", cells.len()));
    }
    let cell = |name: &str| index.get(name).map_or("", |&i| cells[i].as_str());
    let hostname = cell("hostname").to_string();
    check_hostname(&hostname).map_err(|e| e.to_string())?;
    let group = cell("group").trim_matches('/').to_string();
    check_group(&group).map_err(|e| e.to_string())?;
    let profile = cell("profile").to_string();
    if profile.is_empty() {
        return Err("no profile".into());
    }
    let serial = tag("serial", cell("serial"))?;
    let asset = tag("asset", cell("asset"))?;
    let macs = match cell("mac") {
        "" => Vec::new(),
        text => {
            let mac: Mac = text
                .parse()
                .map_err(|e: crate::ident::IdentError| e.to_string())?;
            check_mac(&mac).map_err(|e| e.to_string())?;
            vec![mac]
        }
    };
    if serial.is_none() && asset.is_none() && macs.is_empty() {
        return Err("no serial, asset or mac: nothing would tell the machine".into());
    }
    let ip = match cell("ip") {
        "" => None,
        text => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| format!("ip {text:?} is not an IPv4 address"))?,
        ),
    };
    if ip.is_some() && macs.is_empty() {
        return Err(
            "ip needs a mac: DHCP cannot reserve an address for a machine \
                    it knows only by serial or asset tag"
                .into(),
        );
    }
    Ok(Adoption {
        macs,
        hostname,
        group,
        profile,
        ip,
        install: install_flag(cell("install"), install)?,
        serial,
        asset,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
