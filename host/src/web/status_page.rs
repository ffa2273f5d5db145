//! The status page at `/` of the status listener: server-rendered HTML (maud escapes every value),
//! no JavaScript. Per target: the last passes, the group's size as an inline SVG sparkline, and a
//! withheld plan with its name; then the schedule. An approver also sees the members a plan
//! would remove, error texts (they name users and subjects), the effective settings with the
//! secrets left out, and the buttons.

use crate::outcome::TargetSummary;
use crate::store::history::PassRecord;
use crate::web::ui::Notice;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Passes shown per target.
pub const SHOWN: usize = 20;

/// What the page shows besides the history.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `every 3600 s`, windows, enabled.
    pub schedule: Vec<String>,
    /// When the next pass starts, if the service knows.
    pub next_pass: Option<String>,
    /// The effective settings, secrets replaced by `(set)`.
    pub settings: Vec<(String, String)>,
}

/// The groups of the passes, in the order the newest pass lists them (then older ones).
fn groups(passes: &[PassRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in passes {
        for t in &p.targets {
            if !out.contains(&t.group) {
                out.push(t.group.clone());
            }
        }
    }
    out
}

/// The group's size after each pass, oldest first.
fn sizes(rows: &[(&PassRecord, &TargetSummary)]) -> Vec<u32> {
    rows.iter()
        .rev()
        .filter(|(_, t)| t.error.is_none())
        .map(|(_, t)| (t.current_members + t.added).saturating_sub(t.removed))
        .collect()
}

fn sparkline(values: &[u32]) -> Markup {
    let (w, h) = (160.0f64, 32.0f64);
    if values.len() < 2 {
        return html! {};
    }
    let (min, max) = (
        *values.iter().min().unwrap_or(&0) as f64,
        *values.iter().max().unwrap_or(&0) as f64,
    );
    let span = (max - min).max(1.0);
    let step = w / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = h - 2.0 - (*v as f64 - min) / span * (h - 4.0);
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect();
    html! {
        svg class="spark" width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img"
            aria-label={ "group size from " (values[0]) " to " (values[values.len() - 1]) } {
            polyline fill="none" stroke="currentColor" stroke-width="1.5" points=(points.join(" ")) {}
        }
    }
}

/// Who is looking, as far as the page is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Outcomes and counts only.
    Reader { user: String },
    /// Everything, and forms that carry this CSRF token.
    Approver { user: String, csrf: String },
}

impl Viewer {
    /// The CSRF token forms carry, when the viewer may act.
    fn csrf(&self) -> Option<&str> {
        match self {
            Viewer::Approver { csrf, .. } => Some(csrf),
            Viewer::Reader { .. } => None,
        }
    }

    fn who(&self) -> String {
        match self {
            Viewer::Approver { user, .. } => format!("Signed in as {user}, who may approve."),
            Viewer::Reader { user } => format!("Signed in as {user}, who may read."),
        }
    }
}

/// What a reader sees where an error text stands.
const ERROR_FOR_READERS: &str = "failed (the error is shown to approvers)";

fn target_section(group: &str, passes: &[PassRecord], viewer: &Viewer) -> Markup {
    let rows: Vec<(&PassRecord, &TargetSummary)> = passes
        .iter()
        .filter_map(|p| p.targets.iter().find(|t| t.group == group).map(|t| (p, t)))
        .take(SHOWN)
        .collect();
    let latest = rows.first().map(|(_, t)| *t);
    let size = sizes(&rows);
    html! {
        section {
            h2 {
                (group)
                @if let Some(hub_group) = latest.and_then(|t| t.keeps_hub_group.as_ref()) {
                    " → hub group " (hub_group)
                }
            }
            p {
                @if let Some(last) = size.last() { "Members after the last pass: " strong { (last) } " " }
                (sparkline(&size))
            }
            @if let Some(t) = latest {
                @if let Some(plan) = &t.withheld_plan {
                    div class="withheld" {
                        p {
                            "Withheld plan " code { (plan) } ": would remove " strong { (t.withheld) }
                            " member(s). Approve it with " code { "grouper-sync approve " (plan) } "."
                        }
                        @if viewer.csrf().is_some() {
                            details {
                                summary { "Members it would remove" }
                                ul { @for m in &t.withheld_members { li { code { (m) } } } }
                            }
                        }
                        @if let Some(token) = viewer.csrf() {
                            form method="post" action="approve" {
                                input type="hidden" name="plan" value=(plan);
                                input type="hidden" name="csrf" value=(token);
                                button type="submit" { "Approve plan " (plan) }
                            }
                        }
                    }
                }
            }
            table {
                thead { tr {
                    th { "time" } th { "duration" } th { "outcome" } th { "users" } th { "added" }
                    th { "removed" } th { "skipped" } th { "withheld" } th { "errors" }
                } }
                tbody {
                    @for (p, t) in &rows {
                        tr class=(t.outcome.as_str()) {
                            td { (p.time) @if p.dry_run { " (dry run)" } }
                            td { (p.duration_ms) " ms" }
                            td { (t.outcome.as_str()) }
                            td { (t.users_selected) }
                            td { (t.added) }
                            td { (t.removed) }
                            td { (t.unmapped) }
                            td { (t.withheld) }
                            td { @if let Some(e) = &t.error {
                                @if viewer.csrf().is_some() { (e) } @else { (ERROR_FOR_READERS) }
                            } }
                        }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;max-width:70rem}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{padding:.2rem .6rem;text-align:left;\
border-bottom:1px solid #ddd}tr.failed{background:#fde8e8}tr.removals_withheld{background:#fff4d6}\
.notice{background:#e6f4ea;padding:.4rem .8rem}.withheld{border-left:4px solid #d9a400;padding-left:.8rem}.spark{vertical-align:middle;color:#2b6cb0}\
code{font-size:13px}";

fn actions(viewer: &Viewer) -> Markup {
    html! {
        @match viewer.csrf() {
            Some(csrf) => {
                form method="post" action="run" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Run a pass now" }
                }
            }
            None => {
                p { "You may read this page. Approving plans and running passes needs the approve scope in one of your hub roles." }
            }
        }
    }
}

fn head() -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { "grouper-sync status" }
            style { (PreEscaped(STYLE)) }
        }
    }
}

/// The page a visitor who has not signed in with the `ui_token` gets: the form, nothing else.
pub fn render_sign_in(notice: Option<&Notice>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head())
            body {
                h1 { "grouper-sync" }
                @if let Some(n) = notice { p class="notice" { (n.message()) } }
                form method="post" action="login" {
                    label { "UI token " input type="password" name="token" autocomplete="current-password"; }
                    " " button type="submit" { "Sign in" }
                }
            }
        }
    }
    .into_string()
}

/// The whole page for this viewer (`passes` newest first), with what the viewer's last action
/// did (`notice`).
pub fn render(
    passes: &[PassRecord],
    cx: &Context,
    viewer: &Viewer,
    notice: Option<&Notice>,
) -> String {
    let approver = viewer.csrf().is_some();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head())
            body {
                h1 { "grouper-sync" }
                p class="who" { (viewer.who()) }
                @if let Some(n) = notice { p class="notice" { (n.message()) } }
                (actions(viewer))
                @if let Some(p) = passes.first() {
                    p {
                        "Last pass: " strong { (p.outcome) } " at " (p.time) ", " (p.users_seen)
                        " hub users, " (p.duration_ms) " ms."
                        @if let Some(next) = &cx.next_pass { " Next pass: " (next) "." }
                    }
                    @if approver {
                        @for e in &p.errors { p class="error" { (e) } }
                    } @else if !p.errors.is_empty() {
                        p class="error" { (p.errors.len()) " error(s); their texts are shown to approvers." }
                    }
                } @else {
                    p { "No pass has run yet." }
                }
                @for g in groups(passes) { (target_section(&g, passes, viewer)) }
                h2 { "Schedule" }
                ul { @for s in &cx.schedule { li { (s) } } }
                @if approver {
                    h2 { "Settings" }
                    table { tbody { @for (k, v) in &cx.settings { tr { th { (k) } td { code { (v) } } } } } }
                }
            }
        }
    };
    page.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyterhub_grouper_sync::sync::report::Outcome;

    fn pass(time: &str, members: u32, added: u32, withheld: Option<&str>) -> PassRecord {
        PassRecord {
            time: time.into(),
            duration_ms: 120,
            outcome: if withheld.is_some() {
                "removals_withheld"
            } else {
                "converged"
            }
            .into(),
            dry_run: false,
            users_seen: 5,
            errors: Vec::new(),
            targets: vec![TargetSummary {
                group: "edu:example:<group>".into(),
                keeps_hub_group: Some("gpu<1>".into()),
                outcome: if withheld.is_some() {
                    Outcome::RemovalsWithheld
                } else {
                    Outcome::Converged
                },
                users_selected: 4,
                current_members: members,
                to_add: added,
                to_remove: 0,
                failures: 0,
                subjects_lost: 0,
                added,
                removed: 0,
                unmapped: 1,
                withheld: withheld.map_or(0, |_| 2),
                withheld_plan: withheld.map(String::from),
                withheld_members: withheld
                    .map_or(Vec::new(), |_| vec!["100007".into(), "100008".into()]),
                error: None,
            }],
        }
    }

    #[test]
    fn shows_passes_plan_sparkline_and_escapes() {
        let passes = vec![
            pass("2026-11-30T02:00:00Z", 12, 0, Some("0123456789abcdef")),
            pass("2026-11-30T01:00:00Z", 10, 2, None),
        ];
        let cx = Context {
            schedule: vec!["every 3600 s".into()],
            next_pass: Some("2026-11-30T03:00:00Z".into()),
            settings: vec![("grouper_password".into(), "(set)".into())],
        };
        let signed_in = render(
            &passes,
            &cx,
            &Viewer::Approver {
                user: "ana<".into(),
                csrf: "c5rf".into(),
            },
            Some(&Notice::Approved("0123456789abcdef".into())),
        );
        assert!(
            signed_in.contains("edu:example:&lt;group&gt;"),
            "values are escaped"
        );
        assert!(!signed_in.contains("<group>"));
        assert!(
            signed_in.contains("→ hub group gpu&lt;1&gt;"),
            "a to_hub target names the hub group it keeps"
        );
        assert!(signed_in.contains("0123456789abcdef") && signed_in.contains("100008"));
        assert!(
            signed_in.contains("<polyline"),
            "a sparkline of the group size"
        );
        assert!(signed_in.contains("Next pass: 2026-11-30T03:00:00Z"));
        assert!(!signed_in.contains("<script"), "no JavaScript");
        assert!(signed_in.contains("action=\"approve\"") && signed_in.contains("value=\"c5rf\""));
        assert!(signed_in.contains("action=\"run\""));
        assert!(signed_in.contains("<p class=\"notice\">Approved plan 0123456789abcdef"));
        assert!(signed_in.contains("grouper_password"), "the settings");
        assert!(signed_in.contains("Signed in as ana&lt;, who may approve."));
        let reader = render(&passes, &cx, &Viewer::Reader { user: "ben".into() }, None);
        assert!(
            reader.contains("edu:example:&lt;group&gt;") && reader.contains("0123456789abcdef")
        );
        for hidden in [
            "100007",
            "100008",
            "grouper_password",
            "<form",
            "class=\"notice\"",
        ] {
            assert!(!reader.contains(hidden), "a reader does not see {hidden}");
        }
        assert!(reader.contains("needs the approve scope"));
        let form = render_sign_in(None);
        assert!(form.contains("action=\"login\""));
        assert!(!form.contains("0123456789abcdef") && !form.contains("edu:example"));
    }

    #[test]
    fn error_texts_name_users_and_are_for_approvers_only() {
        let mut failed = pass("2026-11-30T02:00:00Z", 12, 0, None);
        failed.errors = vec!["hub-unreachable: user ana-private: timed out".into()];
        failed.targets[0].error = Some("grouper-forbidden: subject 100007".into());
        let cx = Context::default();
        let reader = render(
            &[failed.clone()],
            &cx,
            &Viewer::Reader { user: "ben".into() },
            None,
        );
        assert!(
            !reader.contains("ana-private") && !reader.contains("100007"),
            "{reader}"
        );
        assert!(reader.contains("1 error(s)") && reader.contains(ERROR_FOR_READERS));
        let approver = render(
            &[failed],
            &cx,
            &Viewer::Approver {
                user: "ana".into(),
                csrf: "c".into(),
            },
            None,
        );
        assert!(approver.contains("ana-private") && approver.contains("100007"));
    }

    #[test]
    fn an_empty_history_says_so() {
        assert!(render(
            &[],
            &Context::default(),
            &Viewer::Reader { user: "ben".into() },
            None
        )
        .contains("No pass has run yet."));
    }
}
