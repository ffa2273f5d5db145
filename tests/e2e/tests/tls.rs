//! HTTPS as deployed: the hub and Grouper behind TLS fronts whose certificates come from a CA
//! this test makes. Trusted through `ca_file`, a pass converges; an unknown CA, an expired
//! certificate and a certificate for another host each fail the pass with an error naming the
//! problem, and nobody is removed.

use grouper_sync_e2e as common;

use common::real_hub::repo_root;
use common::world::{error, ops, settings, world, World, GROUP};
use common::*;
use grouper_sim::tls::{TestCa, TlsFront, Validity};
use grouper_sync_host::sandbox::tls::client_config;

/// Both services behind TLS, with certificates from `ca` for these names.
struct Fronts {
    hub: TlsFront,
    grouper: TlsFront,
}

fn fronts(
    w: &World,
    hub_cert: &grouper_sim::tls::ServerCert,
    grouper_cert: &grouper_sim::tls::ServerCert,
) -> Fronts {
    let hub_addr = w.hub.url.trim_start_matches("http://");
    let hub_addr = hub_addr[..hub_addr.find('/').unwrap_or(hub_addr.len())]
        .parse()
        .expect("the fake hub's address");
    Fronts {
        hub: TlsFront::start(hub_cert, hub_addr),
        grouper: TlsFront::start(grouper_cert, w.server.addr),
    }
}

/// The world's settings with both URLs moved to the TLS fronts, reached as `host`.
fn https_settings(w: &World, f: &Fronts, host: &str) -> Vec<(String, String)> {
    let hub_path = &w.hub.url[w.hub.url.find("/hub").expect("hub path")..];
    let grouper = w.server.base_url("v2_2_100");
    let grouper_path = &grouper[grouper.find("/grouper-ws").expect("grouper path")..];
    with(
        settings(w),
        &[
            (
                "jupyterhub_api_url",
                &format!("{}{hub_path}", f.hub.url(host)),
            ),
            (
                "grouper_base_url",
                &format!("{}{grouper_path}", f.grouper.url(host)),
            ),
        ],
    )
}

fn trusting(ca: &TestCa, dir: &std::path::Path) -> grouper_sync_host::sandbox::runner::Limits {
    let ca_file = dir.join("campus-ca.pem");
    ca.write_cert(&ca_file);
    grouper_sync_host::sandbox::runner::Limits {
        tls: client_config(Some(&ca_file)).expect("the CA file loads"),
        ..open_limits()
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = repo_root()
        .join("target")
        .join(format!("tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_pass_over_https_trusting_the_campus_ca_converges() {
    let ca = TestCa::new("Example Campus CA");
    let cert = ca.issue(&["localhost", "127.0.0.1"], Validity::Current);
    let w = world();
    let f = fronts(&w, &cert, &cert);
    let limits = trusting(&ca, &temp_dir("ok"));
    for host in ["localhost", "127.0.0.1"] {
        let run = run_limited(
            runner(),
            Entry::Typed,
            &https_settings(&w, &f, host),
            &[],
            &limits,
        );
        assert_eq!(run.report()["outcome"], "converged", "{}", run.report());
        assert_eq!(
            w.sim.member_ids(GROUP),
            ["100001", "100002", "100004", "edu:example:staff"]
        );
    }
}

#[test]
fn certificate_problems_fail_the_pass_say_which_and_remove_nobody() {
    let campus = TestCa::new("Example Campus CA");
    let other = TestCa::new("Somebody Else's CA");
    let good = campus.issue(&["localhost", "127.0.0.1"], Validity::Current);
    let cases = [
        (
            "unknown CA",
            other.issue(&["localhost", "127.0.0.1"], Validity::Current),
            "signed by an unknown certificate authority",
        ),
        (
            "expired",
            campus.issue(&["localhost", "127.0.0.1"], Validity::Expired),
            "has expired",
        ),
        (
            "wrong host name",
            campus.issue(&["grouper.example.edu"], Validity::Current),
            "not valid for that host name",
        ),
    ];
    let limits = trusting(&campus, &temp_dir("bad"));
    for (problem, bad, says) in &cases {
        for bad_side in ["hub", "grouper"] {
            let w = world();
            let (hub_cert, grouper_cert) = if bad_side == "hub" {
                (bad, &good)
            } else {
                (&good, bad)
            };
            let f = fronts(&w, hub_cert, grouper_cert);
            let run = run_limited(
                runner(),
                Entry::Typed,
                &https_settings(&w, &f, "localhost"),
                &[],
                &limits,
            );
            let r = run.report();
            assert_eq!(r["outcome"], "failed", "{problem} at the {bad_side}: {r}");
            let e = if bad_side == "hub" {
                &r["errors"][0]
            } else {
                &run.target()["error"]
            };
            let (kind, message) = error(e);
            assert_eq!(kind, "tls", "{problem} at the {bad_side}: {r}");
            assert!(
                message.contains(says) && message.contains("localhost"),
                "{problem} at the {bad_side}: {message}"
            );
            assert!(
                !ops(&w.sim).iter().any(|o| o.is_write()),
                "{problem} at the {bad_side}: nothing may be written"
            );
            assert_eq!(
                w.sim.member_ids(GROUP),
                ["edu:example:staff", "stale1"],
                "{problem} at the {bad_side}"
            );
        }
    }
}

#[test]
fn without_the_campus_ca_the_system_roots_do_not_trust_it() {
    let ca = TestCa::new("Example Campus CA");
    let cert = ca.issue(&["localhost"], Validity::Current);
    let w = world();
    let f = fronts(&w, &cert, &cert);
    let run = run_component(Entry::Typed, &https_settings(&w, &f, "localhost"), &[]);
    let (kind, message) = error(&run.report()["errors"][0]);
    assert_eq!(
        (kind, run.report()["outcome"].as_str()),
        ("tls", Some("failed"))
    );
    assert!(
        message.contains("unknown certificate authority"),
        "{message}"
    );
    assert!(ops(&w.sim).is_empty());
}

#[test]
fn a_ca_file_that_is_not_a_certificate_is_a_clear_error() {
    let dir = temp_dir("cafile");
    let missing = dir.join("nope.pem");
    let e = client_config(Some(&missing)).unwrap_err();
    assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let e = client_config(Some(&garbage)).unwrap_err();
    assert!(e.contains("no PEM certificate"), "{e}");
    let key_only = dir.join("key.pem");
    let cert = TestCa::new("x").issue(&["localhost"], Validity::Current);
    std::fs::write(&key_only, &cert.key_pem).unwrap();
    let e = client_config(Some(&key_only)).unwrap_err();
    assert!(e.contains("no PEM certificate"), "{e}");
}
