//! Operator-defined options: machine over group over pool, sent when asked
//! for (or `always`), and what does not fit the client's maximum dropped.

use super::*;

/// The example inventory with a pool that sets options of its own.
fn world_with_pool_options() -> World {
    let mut w = world("");
    let config = Config::from_text(
        "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.102\n      options:\n        ntp-servers: [10.99.0.250]\n        mtu: {value: 9000, always: true}\n        224: {type: string, value: site-a}\n",
        None,
    )
    .unwrap();
    w.config = config;
    w
}

fn dev01_asking(params: &[u8]) -> Request {
    request(|p| {
        set_mac(p, DEV01);
        p.set_option(opt::PARAMS, params.to_vec());
    })
}

#[test]
fn the_group_overrides_the_pool_and_only_what_is_asked_for_is_sent() {
    let mut w = world_with_pool_options();
    let out = run(
        &mut w,
        &dev01_asking(&[1, 3, 42]),
        Port::Dhcp,
        DhcpMode::Full,
    );
    let p = reply(&out);
    // k8s-dev/_defaults.yaml sets ntp-servers: the group wins over the pool.
    assert_eq!(p.option(42), Some(&[10, 99, 0, 1][..]));
    assert_eq!(p.option(119), None, "set by the group, not asked for");
    assert_eq!(p.option(224), None, "set by the pool, not asked for");
    assert_eq!(p.option(26), Some(&[0x23, 0x28][..]), "always");
    // An unknown machine gets the pool's.
    let unknown = request(|p| p.set_option(opt::PARAMS, [42, 224, 119]));
    let out = run(&mut w, &unknown, Port::Dhcp, DhcpMode::Full);
    let p = reply(&out);
    assert_eq!(p.option(42), Some(&[10, 99, 0, 250][..]));
    assert_eq!(p.option(224), Some(&b"site-a"[..]));
    assert_eq!(p.option(119), None);
}

#[test]
fn domain_search_from_the_group_is_compressed_on_the_wire() {
    let mut w = world("");
    let out = run(&mut w, &dev01_asking(&[119]), Port::Dhcp, DhcpMode::Full);
    let mut want = b"\x03dev\x04prov\x07example\x03net\x00".to_vec();
    want.extend_from_slice(b"\xc0\x04");
    assert_eq!(reply(&out).option(119), Some(&want[..]));
}

#[test]
fn what_does_not_fit_the_clients_maximum_is_dropped_and_counted() {
    let mut w = world("");
    let big = format!(
        "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.102\n      options:\n        224: {{type: string, value: {a}}}\n        225: {{type: string, value: {b}}}\n",
        a = "a".repeat(200),
        b = "b".repeat(150),
    );
    w.config = Config::from_text(&big, None).unwrap();
    // No option 57: 576 bytes, so both cannot fit; the one asked first stays.
    let req = request(|p| p.set_option(opt::PARAMS, [225, 224]));
    let out = run(&mut w, &req, Port::Dhcp, DhcpMode::Full);
    let r = out.reply.as_ref().unwrap();
    assert!(r.packet.encode().len() <= 576 - 28);
    assert!(r.packet.option(225).is_some());
    assert_eq!(r.packet.option(224), None);
    assert!(r.dropped_options.contains(&224), "{:?}", r.dropped_options);
    // A client that takes 1500 bytes gets both.
    let req = request(|p| {
        set_mac(p, [2, 0, 0, 0, 0, 9]);
        p.set_option(opt::PARAMS, [225, 224]);
        p.set_option(opt::MAX_SIZE, 1500u16.to_be_bytes());
    });
    let out = run(&mut w, &req, Port::Dhcp, DhcpMode::Full);
    let r = out.reply.as_ref().unwrap();
    assert!(r.packet.option(224).is_some() && r.packet.option(225).is_some());
    assert!(r.dropped_options.is_empty());
}

#[test]
fn a_pool_option_mistake_is_refused_with_its_line() {
    let text = "dhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      range: 10.99.0.100-10.99.0.102\n      options:\n        mtu: big\n";
    let e = Config::from_text(text, None).unwrap_err().to_string();
    assert!(e.contains(":6") && e.contains("whole number"), "{e}");
}
