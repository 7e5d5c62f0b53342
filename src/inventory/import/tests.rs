use super::*;
use crate::inventory::{LoadOptions, load};

fn inv() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("_profiles")).unwrap();
    std::fs::create_dir_all(d.join("rack12")).unwrap();
    std::fs::write(
        d.join("_profiles/os.yaml"),
        "boot: {kernel: k, initrd: i}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("rack12/old-01.yaml"),
        "mac: \"52:54:00:00:00:01\"\nserial: SN-OLD\nasset: A-OLD\nprofile: os\n",
    )
    .unwrap();
    let loaded = load(d, &LoadOptions::default());
    assert!(loaded.is_ok(), "{:?}", loaded.problems);
    (dir, loaded.inventory)
}

fn errors(text: &str) -> Vec<String> {
    let (_d, inv) = inv();
    parse(text, &inv, false)
        .unwrap_err()
        .into_iter()
        .map(|e| format!("{}: {}", e.line, e.message))
        .collect()
}

#[test]
fn rows_become_adoptions_in_any_column_order() {
    let (_d, inv) = inv();
    let text = "# rack 12, from PO 4711\n\
                hostname,serial,asset,mac,group,profile,ip,install\n\
                r12-01,SN-0001,,,rack12,os,,\n\
                \n\
                r12-02,,A-0002,,rack12,os,,yes\n\
                r12-03,\"SN, with comma\",,52-54-00-12-00-03,/rack12/,os,10.99.0.53,false\n";
    let got = parse(text, &inv, false).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].serial.as_deref(), Some("SN-0001"));
    assert!(!got[0].install, "absent means false");
    assert_eq!(got[1].asset.as_deref(), Some("A-0002"));
    assert!(got[1].install);
    assert_eq!(got[2].serial.as_deref(), Some("SN, with comma"));
    assert_eq!(got[2].group, "rack12");
    assert_eq!(got[2].macs, vec!["52:54:00:12:00:03".parse().unwrap()]);
    assert_eq!(got[2].ip, Some("10.99.0.53".parse().unwrap()));
    // --install makes an empty cell mean true, not a `false` one.
    let got = parse(text, &inv, true).unwrap();
    assert!(got[0].install && got[1].install && !got[2].install);
}

#[test]
fn bad_rows_are_reported_at_their_line() {
    let e = errors(
        "hostname,serial,asset,mac,profile,ip\n\
         ok-01,SN-1,,,os,\n\
         Bad_Name,SN-2,,,os,\n\
         no-id,,,,os,\n\
         ph-01,To be filled by O.E.M.,,,os,\n\
         mac-01,,,52:54:00,os,\n\
         ip-01,SN-3,,,os,10.99.0.9\n\
         short,SN-4\n\
         q-01,\"SN-5,,,os,\n\
         noprof,SN-6,,,,\n",
    );
    let want = [
        "3: ", // Bad_Name: the hostname rule's words
        "4: no serial, asset or mac",
        "5: serial \"To be filled by O.E.M.\" is a firmware placeholder",
        "6: invalid MAC address",
        "7: ip needs a mac",
        "8: 2 fields; the header has 6",
        "9: a quoted field that does not end on its line",
        "10: no profile",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, want) in e.iter().zip(want) {
        assert!(
            got.starts_with(want),
            "{got:?} does not start with {want:?}"
        );
    }
}

#[test]
fn duplicates_in_the_file_and_with_the_inventory_are_refused() {
    let e = errors(
        "hostname,serial,asset,mac,profile\n\
         a-01,SN-1,,,os\n\
         a-02,SN-1,,,os\n\
         A-01,SN-9,,,os\n\
         old-02,SN-OLD,,,os\n\
         old-03,,A-OLD,,os\n\
         old-04,,,52:54:00:00:00:01,os\n\
         old-01,SN-8,,,os\n",
    );
    assert_eq!(
        e,
        vec![
            "3: serial SN-1 is also on line 2",
            "4: hostname a-01 is also on line 2",
            "5: serial SN-OLD is already old-01's (rack12/old-01.yaml)",
            "6: asset tag A-OLD is already old-01's (rack12/old-01.yaml)",
            "7: MAC 52:54:00:00:00:01 is already old-01's (rack12/old-01.yaml)",
            "8: hostname old-01 is already old-01's (rack12/old-01.yaml)",
        ]
    );
}

#[test]
fn headers_are_checked() {
    assert_eq!(
        errors("")[0],
        "1: no header line (serial,asset,mac,hostname,group,profile,ip)"
    );
    assert!(errors("hostname,profile,colour\n")[0].contains("unknown column \"colour\""));
    assert!(errors("hostname,profile,serial,serial\n")[0].contains("column serial twice"));
    assert!(errors("serial,profile\nx,os\n")[0].contains("no hostname column"));
    assert!(errors("hostname,profile\nx,os\n")[0].contains("no serial, asset or mac column"));
    assert!(errors("hostname,profile,serial\n")[0].contains("no machines below the header"));
}

#[test]
fn the_bounds_hold() {
    let big = format!("hostname,profile,serial\n{}", "x".repeat(MAX_BYTES));
    assert!(errors(&big)[0].contains("at most 1048576"));
    let long = format!(
        "hostname,profile,serial\na,os,{}\n",
        "S".repeat(MAX_FIELD + 1)
    );
    assert!(errors(&long)[0].contains("longer than 256 bytes"));
    let serial = format!("hostname,profile,serial\na,os,S{}\n", "N".repeat(MAX_VALUE));
    assert!(errors(&serial)[0].contains("at most 64 bytes"));
    let mut rows = String::from("hostname,profile,serial\n");
    for n in 0..=MAX_ROWS {
        rows.push_str(&format!("m-{n},os,SN-{n}\n"));
    }
    let e = errors(&rows);
    assert_eq!(e.len(), 1, "{:?}", &e[..e.len().min(3)]);
    assert!(e[0].contains("more than 10000 rows"), "{e:?}");
}
