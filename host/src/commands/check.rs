//! `grouper-sync check`: the settings, the hub token's scopes and the targets, read and printed;
//! nothing written.

use super::ExitStatus;
use crate::options::Options;
use crate::sandbox::bindings::{core_kind, Direction};
use crate::sandbox::runner::{self, Inputs, Limits, Runner};

mod scopes;

pub async fn execute(opts: &Options, runner: &Runner, limits: &Limits) -> ExitStatus {
    let call = runner
        .check(&Inputs::config(&opts.component_config), limits)
        .await;
    runner::relog(&call.stderr);
    crate::sandbox::progress::emit_logged(&call.stdout);
    let report = match call.result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("configuration: {}", e.message);
            return ExitStatus::Config;
        }
        Err(stopped) => {
            eprintln!("check failed: {}", stopped.message());
            return ExitStatus::Failed;
        }
    };
    println!("configuration: valid");
    println!("egress allowed to: {}", opts.allowed_hosts.join(", "));
    match &report.hub_identity {
        Some(who) => println!("hub token: {who}; scopes: {}", report.hub_scopes.join(", ")),
        None => println!("hub token: could not be checked"),
    }
    for s in &report.missing_scopes {
        println!("MISSING scope: {s} (add it to the service's role in c.JupyterHub.load_roles)");
    }
    let needed: Vec<String> = report
        .targets
        .iter()
        .flat_map(|t| t.scopes.iter().cloned())
        .collect();
    let unneeded = scopes::unneeded(&report.hub_scopes, &needed);
    if report.hub_identity.is_some() && !unneeded.is_empty() {
        println!(
            "unneeded scopes: {} (no target uses them; the service's role can drop them)",
            unneeded.join(", ")
        );
    }
    for t in &report.targets {
        let (arrow, hub) = match (&t.direction, &t.hub_group) {
            (Direction::ToHub, Some(g)) => ("->", format!("hub group {g}")),
            (_, Some(g)) => ("<-", format!("hub group {g}")),
            (_, None) => ("<-", "all hub users".to_string()),
        };
        let members = match t.grouper_members {
            Some(n) => format!("readable, {n} member(s) on the first page"),
            None => "not read".to_string(),
        };
        println!(
            "target {} {arrow} {hub}: {members}; needs {}",
            t.group,
            t.scopes.join(", ")
        );
        if let Some(p) = &t.provisioning {
            let list = |ids: &[String]| match ids {
                [] => "none".to_string(),
                ids => ids.join(", "),
            };
            println!(
                "  provisioning: marked for {}; MISSING {}; switched off {}",
                list(&p.present),
                list(&p.missing),
                list(&p.switched_off)
            );
        }
        for note in &t.notes {
            println!("  note: {note}");
        }
    }
    for e in &report.errors {
        println!("ERROR [{}]: {}", core_kind(e.kind), e.message);
    }
    println!(
        "{}",
        if report.ok {
            "check passed; nothing was written"
        } else {
            "check FAILED; nothing was written"
        }
    );
    if report.ok {
        ExitStatus::Ok
    } else {
        ExitStatus::Failed
    }
}
