//! `grouper-sim`: serve the Grouper WS simulator on a loopback port.
//!
//! ```text
//! grouper-sim --listen 127.0.0.1:8089 --user GrouperSystem --password-env GROUPER_PASSWORD \
//!             --group edu:example:hub-users --subjects 100001,100002 --member 999999
//! ```
//! Subjects listed with --subjects exist in source `ldap`; --member seeds an existing (possibly
//! stale) immediate member. The base URL to configure is printed on start.

use grouper_sim::{Config, Simulator, Subject};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8089".to_string();
    let mut config = Config::default();
    let mut groups = Vec::new();
    let mut subjects = Vec::new();
    let mut members = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--user" => config.user = value()?,
            "--password-env" => {
                let name = value()?;
                config.password = std::env::var(&name)
                    .map_err(|_| anyhow::anyhow!("environment variable {name} is not set"))?;
            }
            "--server-version" => config.server_version = value()?,
            "--group" => groups.push(value()?),
            "--subjects" => subjects.extend(
                value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "--member" => members.push(value()?),
            "-h" | "--help" => {
                println!("usage: grouper-sim [--listen ADDR] [--user U] [--password-env VAR] [--server-version 2.5.0] --group NAME [--subjects ID,ID] [--member ID]...");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other} (see --help)"),
        }
    }
    anyhow::ensure!(!groups.is_empty(), "give at least one --group");
    let sim = Simulator::new(config);
    for id in subjects.iter().chain(&members) {
        sim.add_subject(Subject::new("ldap", id));
    }
    for g in &groups {
        sim.add_group(g);
        for m in &members {
            sim.add_member(g, "ldap", m);
        }
    }
    let server = sim.serve(&listen)?;
    println!(
        "grouper-sim listening; base URL {}",
        server.base_url("v2_2_100")
    );
    loop {
        std::thread::park();
    }
}
