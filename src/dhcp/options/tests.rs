use super::*;
use crate::yaml;

fn opts(text: &str) -> Result<Vec<OperatorOption>, Vec<OptionError>> {
    let tree = yaml::parse(text, 0).unwrap();
    parse(tree.get("dhcp_options").unwrap())
}

fn one(text: &str) -> OperatorOption {
    let mut v = opts(text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn error(text: &str) -> OptionError {
    opts(text).unwrap_err().remove(0)
}

#[test]
fn named_options_encode_as_their_rfcs_say() {
    let o = one("dhcp_options:\n  ntp-servers: [10.0.0.1, 10.0.0.2]\n");
    assert_eq!((o.code, o.value), (42, vec![10, 0, 0, 1, 10, 0, 0, 2]));
    let o = one("dhcp_options:\n  mtu: 9000\n");
    assert_eq!((o.code, o.value), (26, vec![0x23, 0x28]));
    let o = one("dhcp_options:\n  tftp-server-name: boot.example.net\n");
    assert_eq!((o.code, o.value), (66, b"boot.example.net".to_vec()));
    let o = one(
        "dhcp_options:\n  classless-static-routes: [\"10.20.0.0/16 via 10.99.0.254\", {to: 0.0.0.0/0, via: 10.99.0.1}, \"10.1.2.128/25 via 10.99.0.2\"]\n",
    );
    assert_eq!(o.code, 121);
    assert_eq!(
        o.value,
        vec![
            16, 10, 20, 10, 99, 0, 254, 0, 10, 99, 0, 1, 25, 10, 1, 2, 128, 10, 99, 0, 2
        ]
    );
    assert!(!o.always);
}

#[test]
fn domain_search_is_compressed() {
    // RFC 3397 §2's example: eng.apple.com and marketing.apple.com.
    let o = one("dhcp_options:\n  domain-search: [eng.apple.com, marketing.apple.com]\n");
    assert_eq!(o.code, 119);
    let mut want = b"\x03eng\x05apple\x03com\x00".to_vec();
    want.extend_from_slice(b"\x09marketing\xc0\x04");
    assert_eq!(o.value, want);
    // A name that is wholly a suffix already written is one pointer.
    let o = one("dhcp_options:\n  domain-search: [a.example.net, example.net]\n");
    assert_eq!(o.value, b"\x01a\x07example\x03net\x00\xc0\x02".to_vec());
}

#[test]
fn any_code_with_a_declared_type() {
    let cases: [(&str, Vec<u8>); 8] = [
        ("{type: ip, value: 10.1.2.3}", vec![10, 1, 2, 3]),
        ("{type: ips, value: [10.1.2.3]}", vec![10, 1, 2, 3]),
        ("{type: string, value: rack-12}", b"rack-12".to_vec()),
        ("{type: u8, value: 255}", vec![255]),
        ("{type: u16, value: 513}", vec![2, 1]),
        ("{type: u32, value: 16909060}", vec![1, 2, 3, 4]),
        ("{type: bool, value: true}", vec![1]),
        (
            "{type: hex, value: \"de:ad:BE:ef\"}",
            vec![0xde, 0xad, 0xbe, 0xef],
        ),
    ];
    for (value, want) in cases {
        let o = one(&format!("dhcp_options:\n  224: {value}\n"));
        assert_eq!((o.code, o.value), (224, want), "{value}");
    }
    let o = one("dhcp_options:\n  224: {type: string, value: x, always: true}\n");
    assert!(o.always);
}

#[test]
fn vendor_specific_raw_or_as_sub_options() {
    let o = one("dhcp_options:\n  vendor-specific: {hex: \"01:04:0a:00:00:01\"}\n");
    assert_eq!((o.code, o.value), (43, vec![1, 4, 10, 0, 0, 1]));
    let o = one(
        "dhcp_options:\n  vendor-specific:\n    suboptions:\n      1: {type: ip, value: 10.0.0.1}\n      2: hello\n",
    );
    assert_eq!(
        o.value,
        vec![1, 4, 10, 0, 0, 1, 2, 5, b'h', b'e', b'l', b'l', b'o']
    );
}

#[test]
fn every_mistake_is_refused_at_its_line() {
    let cases = [
        ("dhcp_options:\n  ntp-servers: [10.0.0.300]\n", 2, "IPv4"),
        ("dhcp_options:\n  mtu: 70000\n", 2, "0 to 65535"),
        ("dhcp_options:\n  224: hello\n", 2, "needs a type"),
        (
            "dhcp_options:\n  224: {type: float, value: 1}\n",
            2,
            "unknown type",
        ),
        ("dhcp_options:\n  no-such-option: 1\n", 2, "unknown option"),
        (
            "dhcp_options:\n  53: {type: u8, value: 5}\n",
            2,
            "pxedeck's to set",
        ),
        (
            "dhcp_options:\n  82: {type: hex, value: \"01\"}\n",
            2,
            "pxedeck's to set",
        ),
        (
            "dhcp_options:\n  300: {type: u8, value: 5}\n",
            2,
            "unknown option",
        ),
        (
            "dhcp_options:\n  domain-search: [\"bad..name\"]\n",
            2,
            "not a DNS label",
        ),
        (
            "dhcp_options:\n  domain-search: [\"-x.example\"]\n",
            2,
            "not a DNS label",
        ),
        (
            "dhcp_options:\n  classless-static-routes: [\"10.20.0.1/16 via 10.0.0.1\"]\n",
            2,
            "host bits",
        ),
        (
            "dhcp_options:\n  classless-static-routes: [\"10.20.0.0/16\"]\n",
            2,
            "a route is",
        ),
        (
            "dhcp_options:\n  224: {type: hex, value: \"abc\"}\n",
            2,
            "even number",
        ),
        (
            "dhcp_options:\n  224: {type: hex, value: \"é1\"}\n",
            2,
            "not hex",
        ),
        (
            "dhcp_options:\n  mtu: {value: 1500, type: u32}\n",
            2,
            "fixed type",
        ),
        (
            "dhcp_options:\n  mtu: {value: 1500, always: yes}\n",
            2,
            "true or false",
        ),
        (
            "dhcp_options:\n  mtu: 1500\n  26: {type: u16, value: 1400}\n",
            3,
            "set twice",
        ),
        ("dhcp_options: [1, 2]\n", 1, "must be a map"),
        (
            "dhcp_options:\n  vendor-specific: {other: 1}\n",
            2,
            "`hex:` or `suboptions:`",
        ),
    ];
    for (text, line, words) in cases {
        let e = error(text);
        assert_eq!(e.origin.line, line, "{text}: {e:?}");
        assert!(e.message.contains(words), "{text}: {}", e.message);
    }
}

#[test]
fn bounds_on_count_and_size() {
    let mut text = String::from("dhcp_options:\n");
    for code in 100..(100 + MAX_OPTIONS as u32 + 1) {
        text.push_str(&format!("  {code}: {{type: u8, value: 1}}\n"));
    }
    assert!(error(&text).message.contains("more than"));
    let long = "x".repeat(MAX_VALUE + 1);
    let e = error(&format!(
        "dhcp_options:\n  224: {{type: string, value: {long}}}\n"
    ));
    assert!(e.message.contains("longer than"), "{}", e.message);
    let e = error(&format!(
        "dhcp_options:\n  vendor-specific: {{hex: \"{}\"}}\n",
        "01".repeat(256)
    ));
    assert!(e.message.contains("at most 255"), "{}", e.message);
}

#[test]
fn the_machine_overrides_the_pool_per_code() {
    let pool = vec![
        OperatorOption {
            code: 42,
            value: vec![1, 1, 1, 1],
            always: false,
        },
        OperatorOption {
            code: 26,
            value: vec![5, 220],
            always: false,
        },
    ];
    let machine = vec![OperatorOption {
        code: 42,
        value: vec![2, 2, 2, 2],
        always: true,
    }];
    let got: Vec<(u8, &[u8])> = merged(&pool, &machine)
        .iter()
        .map(|o| (o.code, o.value.as_slice()))
        .collect();
    assert_eq!(got, vec![(26, &[5, 220][..]), (42, &[2, 2, 2, 2][..])]);
}
