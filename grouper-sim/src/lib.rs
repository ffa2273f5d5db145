//! A Grouper WS REST/JSON simulator: the membership operations (getMembers, addMember,
//! deleteMember, hasMember; batch and lite), groupSave, and the attribute assignments of groups
//! (getAttributeAssignments, assignAttributesBatch: the provisioning marks) with Grouper's URL
//! shapes, authentication,
//! `X-Grouper-*` headers, result codes and response bodies, an in-memory membership store,
//! a seeded subject directory, a request log, and fault knobs for tests.
//!
//! [`Simulator::handle`] is a pure request -> response function; [`Simulator::serve`] puts it
//! behind an HTTP server on a loopback port.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod ops;
pub mod server;
pub use ops::{form_params, percent_decode, Operation};
pub use server::ServerHandle;
#[cfg(feature = "tls")]
pub mod tls;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub source_id: String,
    pub id: String,
    pub name: String,
    /// Values that a `subjectIdentifier` lookup matches (e.g. login names).
    pub identifiers: Vec<String>,
    /// Subject attributes returned when asked for by name (`subjectAttributeNames`).
    pub attributes: BTreeMap<String, String>,
}

impl Subject {
    pub fn new(source_id: &str, id: &str) -> Self {
        Subject {
            source_id: source_id.into(),
            id: id.into(),
            name: id.into(),
            identifiers: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    pub fn identifier(mut self, identifier: &str) -> Self {
        self.identifiers.push(identifier.into());
        self
    }
    pub fn attribute(mut self, name: &str, value: &str) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub uuid: String,
    pub id_index: u64,
    /// Immediate members as (sourceId, subjectId).
    pub members: BTreeSet<(String, String)>,
    /// The WS user can view but not update this group: writes give INSUFFICIENT_PRIVILEGES.
    pub update_denied: bool,
}

impl Group {
    /// The group without its members: what a write's answer shows of it (copying a large group's
    /// members for every request would make the simulator, not the client, the slow part).
    pub fn head(&self) -> Group {
        Group {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            uuid: self.uuid.clone(),
            id_index: self.id_index,
            members: BTreeSet::new(),
            update_denied: self.update_denied,
        }
    }
}

/// What an attribute name (an `attributeDefName`) may be assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignTo {
    /// `attributeAssignType` `group`.
    Group,
    /// `group_asgn`: an assignment on a group's assignment (the provisioning values).
    GroupAssignment,
}

/// An attribute name Grouper knows, with what its attribute definition allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeName {
    pub name: String,
    /// The attribute definition (`attributeDef`) it belongs to: privileges are on this.
    pub def: String,
    pub assign_to: AssignTo,
    pub multi_assignable: bool,
    /// `None`: a marker without values; `Some("string")`: one string value.
    pub value_type: Option<&'static str>,
}

/// Who an assignment is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignOwner {
    Group(String),
    /// Another assignment, by its id.
    Assignment(String),
}

/// One attribute assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeAssign {
    pub id: String,
    /// The attribute name (`attributeDefNameName`).
    pub name: String,
    pub owner: AssignOwner,
    pub values: Vec<String>,
}

/// The provisioning framework's attributes (Grouper 2.6+, provisioning.md): the marker on groups
/// (multi-assignable, one per provisioner) and the single string values on a marker.
pub const PROVISIONING_MARKER: &str = "etc:provisioning:provisioningMarker";
pub const PROVISIONING_DEF: &str = "etc:provisioning:provisioningDef";
pub const PROVISIONING_VALUE_DEF: &str = "etc:provisioning:provisioningValueDef";
pub const PROVISIONING_VALUES: [&str; 5] = [
    "etc:provisioning:provisioningTarget",
    "etc:provisioning:provisioningDoProvision",
    "etc:provisioning:provisioningDirectAssign",
    "etc:provisioning:provisioningStemScope",
    "etc:provisioning:provisioningMetadataJson",
];

fn provisioning_attributes() -> BTreeMap<String, AttributeName> {
    let marker = AttributeName {
        name: PROVISIONING_MARKER.into(),
        def: PROVISIONING_DEF.into(),
        assign_to: AssignTo::Group,
        multi_assignable: true,
        value_type: None,
    };
    let values = PROVISIONING_VALUES.iter().map(|n| AttributeName {
        name: n.to_string(),
        def: PROVISIONING_VALUE_DEF.into(),
        assign_to: AssignTo::GroupAssignment,
        multi_assignable: false,
        value_type: Some("string"),
    });
    std::iter::once(marker)
        .chain(values)
        .map(|a| (a.name.clone(), a))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub user: String,
    pub password: String,
    /// e.g. "2.2.0" or "2.5.0". Below 2.5 the server behaves like 2.2: `text/x-json` only,
    /// no `memberId` / `enabled`, and an empty addMember list is rejected.
    pub server_version: String,
    /// `ws.add.member.subjects.max`, enforced on deleteMember.
    pub subjects_max: usize,
    /// A user that authenticates but is not allowed to use web services.
    pub disallowed_user: Option<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            user: "GrouperSystem".into(),
            password: "pass".into(),
            server_version: "2.5.0".into(),
            subjects_max: 20000,
            disallowed_user: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and raw body (no Grouper headers), before touching any state.
    Status {
        status: u16,
        content_type: String,
        body: String,
        retry_after: Option<u64>,
    },
    /// Wait, then answer normally.
    Delay(Duration),
    /// Process normally but send a body that is not valid JSON.
    MalformedJson,
    /// Process normally but close the connection halfway through the body.
    TruncatedBody,
    /// Process normally, send half the body, pause this long, then send the rest.
    StallMidBody(Duration),
    /// Answer normally, then change the group's immediate members as another admin would
    /// (e.g. between the pages of a listing).
    ChangeMembers {
        group: String,
        add: Vec<(String, String)>,
        remove: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which operation it hits; `None` hits any Grouper request.
    pub operation: Option<Operation>,
    pub action: FaultAction,
    /// How many matching requests it hits.
    pub times: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub operation: Option<Operation>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SimRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Option<Duration>,
    /// Send only this many body bytes (with the full Content-Length), then close.
    pub truncate_at: Option<usize>,
    /// Pause this long after half the body.
    pub stall: Option<Duration>,
}

impl SimResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl State {
    /// The subjects with this id, in the order they were added.
    pub(crate) fn subjects_with_id<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Subject> {
        self.subjects_by_id
            .get(id)
            .into_iter()
            .flatten()
            .map(|&i| &self.subjects[i])
    }
}

/// The source of a member that is a group.
const GROUP_SOURCE: &str = "g:gsa";

pub(crate) struct State {
    pub config: Config,
    pub groups: BTreeMap<String, Group>,
    pub subjects: Vec<Subject>,
    /// Positions in `subjects` by subject id, so that large groups resolve in linear time.
    pub subjects_by_id: std::collections::HashMap<String, Vec<usize>>,
    pub faults: VecDeque<Fault>,
    pub log: Vec<LoggedRequest>,
    /// Folders made with `add_stem` (the parent folders of groups exist too).
    pub stems: BTreeSet<String>,
    /// Folders in which the WS user lacks CREATE.
    pub create_denied: BTreeSet<String>,
    pub attribute_names: BTreeMap<String, AttributeName>,
    pub assigns: Vec<AttributeAssign>,
    /// Attribute definitions the WS user may not assign (ATTR_UPDATE) ...
    pub attr_update_denied: BTreeSet<String>,
    /// ... or read (ATTR_READ): their assignments are left out of answers, as Grouper filters
    /// what a subject cannot read.
    pub attr_read_denied: BTreeSet<String>,
    /// Assignments made so far (their ids derive from it).
    pub assign_count: u64,
}

impl State {
    /// The members a group has through its subgroups (members of source `g:gsa` whose id is a
    /// group's uuid or name), at any depth: Grouper's effective members.
    pub(crate) fn effective_members(&self, g: &Group) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::from([g.name.clone()]);
        let mut queue: Vec<&Group> = vec![g];
        while let Some(group) = queue.pop() {
            // group members sort together (by source first): a 100,000-member group is not
            // walked for each of its pages
            let groups_in = group
                .members
                .range((GROUP_SOURCE.to_string(), String::new())..)
                .take_while(|(src, _)| src == GROUP_SOURCE);
            for (_, id) in groups_in {
                let Some(sub) = self
                    .groups
                    .values()
                    .find(|s| s.uuid == *id || s.name == *id)
                else {
                    continue;
                };
                if seen.insert(sub.name.clone()) {
                    out.extend(sub.members.iter().cloned());
                    queue.push(sub);
                }
            }
        }
        out
    }

    /// A fresh assignment id, shaped like Grouper's.
    pub(crate) fn new_assign_id(&mut self) -> String {
        self.assign_count += 1;
        hex_id(&format!("attribute-assign-{}", self.assign_count))
    }

    /// Does the folder exist: made with `add_stem`, or holding a group or a folder at any depth?
    pub(crate) fn stem_exists(&self, stem: &str) -> bool {
        let prefix = format!("{stem}:");
        self.stems
            .iter()
            .chain(self.groups.keys())
            .any(|n| n == stem || n.starts_with(&prefix))
    }
}

pub struct Simulator {
    state: Mutex<State>,
}

/// A deterministic 32-hex-digit id, shaped like Grouper's uuids and member ids.
pub(crate) fn hex_id(seed: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in seed.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("{h:032x}")
}

impl Simulator {
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(Simulator {
            state: Mutex::new(State {
                config,
                groups: BTreeMap::new(),
                subjects: Vec::new(),
                subjects_by_id: std::collections::HashMap::new(),
                faults: VecDeque::new(),
                log: Vec::new(),
                stems: BTreeSet::new(),
                create_denied: BTreeSet::new(),
                attribute_names: provisioning_attributes(),
                assigns: Vec::new(),
                attr_update_denied: BTreeSet::new(),
                attr_read_denied: BTreeSet::new(),
                assign_count: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_subject(&self, subject: Subject) {
        let mut st = self.lock();
        let at = st.subjects.len();
        st.subjects_by_id
            .entry(subject.id.clone())
            .or_default()
            .push(at);
        st.subjects.push(subject);
    }

    /// Creates a folder (stem), for groupSave to create groups in.
    pub fn add_stem(&self, name: &str) {
        self.lock().stems.insert(name.into());
    }

    /// Takes CREATE in this folder away from the WS user: groupSave there fails.
    pub fn deny_create(&self, stem: &str) {
        self.lock().create_denied.insert(stem.into());
    }

    /// Takes ATTR_UPDATE on this attribute definition away from the WS user.
    pub fn deny_attribute_update(&self, def: &str) {
        self.lock().attr_update_denied.insert(def.into());
    }

    /// Takes ATTR_READ on this attribute definition away from the WS user.
    pub fn deny_attribute_read(&self, def: &str) {
        self.lock().attr_read_denied.insert(def.into());
    }

    /// Forgets the provisioning attributes, as on a Grouper older than 2.6.
    pub fn remove_provisioning_attributes(&self) {
        self.lock().attribute_names.clear();
    }

    /// Marks a group for a provisioner as an admin would in the UI: a marker with
    /// `provisioningTarget` and, when `do_provision`, `provisioningDoProvision`.
    pub fn mark_for_provisioning(&self, group: &str, provisioner: &str, do_provision: bool) {
        let mut st = self.lock();
        let marker = st.new_assign_id();
        st.assigns.push(AttributeAssign {
            id: marker.clone(),
            name: PROVISIONING_MARKER.into(),
            owner: AssignOwner::Group(group.into()),
            values: vec![],
        });
        let mut values = vec![(PROVISIONING_VALUES[0], provisioner)];
        if do_provision {
            values.push((PROVISIONING_VALUES[1], provisioner));
        }
        for (name, value) in values {
            let id = st.new_assign_id();
            st.assigns.push(AttributeAssign {
                id,
                name: name.into(),
                owner: AssignOwner::Assignment(marker.clone()),
                values: vec![value.into()],
            });
        }
    }

    /// The provisioners a group is marked for, as (provisioningTarget, provisioningDoProvision).
    pub fn provisioning_marks(&self, group: &str) -> Vec<(Option<String>, Option<String>)> {
        let st = self.lock();
        let value = |marker: &str, name: &str| {
            st.assigns
                .iter()
                .find(|a| a.name == name && a.owner == AssignOwner::Assignment(marker.into()))
                .and_then(|a| a.values.first().cloned())
        };
        st.assigns
            .iter()
            .filter(|a| {
                a.name == PROVISIONING_MARKER && a.owner == AssignOwner::Group(group.into())
            })
            .map(|m| {
                (
                    value(&m.id, PROVISIONING_VALUES[0]),
                    value(&m.id, PROVISIONING_VALUES[1]),
                )
            })
            .collect()
    }

    /// The group's uuid (what a `g:gsa` member's subject id is), if it exists.
    pub fn group_uuid(&self, name: &str) -> Option<String> {
        self.lock().groups.get(name).map(|g| g.uuid.clone())
    }

    /// Does the group exist?
    pub fn has_group(&self, name: &str) -> bool {
        self.lock().groups.contains_key(name)
    }

    /// Creates a group (name `stem:...:extension`) with no members.
    pub fn add_group(&self, name: &str) {
        let mut st = self.lock();
        let id_index = 10000 + st.groups.len() as u64;
        let extension = name.rsplit(':').next().unwrap_or(name).to_string();
        st.groups.insert(
            name.into(),
            Group {
                name: name.into(),
                display_name: name.into(),
                description: format!("{extension} group"),
                uuid: hex_id(name),
                id_index,
                members: BTreeSet::new(),
                update_denied: false,
            },
        );
    }

    /// Replaces parts of a group's record (for matching captured responses).
    pub fn edit_group(&self, name: &str, edit: impl FnOnce(&mut Group)) {
        if let Some(g) = self.lock().groups.get_mut(name) {
            edit(g);
        }
    }

    pub fn add_member(&self, group: &str, source_id: &str, id: &str) {
        self.edit_group(group, |g| {
            g.members.insert((source_id.into(), id.into()));
        });
    }

    /// The group's immediate members as (sourceId, subjectId), sorted.
    pub fn members(&self, group: &str) -> Vec<(String, String)> {
        self.lock()
            .groups
            .get(group)
            .map(|g| g.members.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The group's member subject ids, sorted.
    pub fn member_ids(&self, group: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.members(group).into_iter().map(|(_, id)| id).collect();
        ids.sort();
        ids
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Answers one request as Grouper would.
    pub fn handle(&self, req: &SimRequest) -> SimResponse {
        let mut st = self.lock();
        // A status fault answers in front of Grouper: nothing it would have done happens.
        let before = (!st.faults.is_empty()).then(|| (st.groups.clone(), st.assigns.clone()));
        let (op, mut resp) = ops::handle(&mut st, req);
        if let Some(op) = op {
            if let Some(action) = take_fault(&mut st.faults, op) {
                match &action {
                    FaultAction::Status { .. } => {
                        if let Some((groups, assigns)) = before {
                            st.groups = groups;
                            st.assigns = assigns;
                        }
                    }
                    FaultAction::ChangeMembers { group, add, remove } => {
                        if let Some(g) = st.groups.get_mut(group) {
                            g.members.extend(add.iter().cloned());
                            for m in remove {
                                g.members.remove(m);
                            }
                        }
                    }
                    _ => {}
                }
                resp = apply_fault(action, resp);
            }
        }
        let body = if req.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&req.body).ok()
        };
        st.log.push(LoggedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            operation: op,
            content_type: req.header("content-type").map(String::from),
            body,
            status: resp.status,
        });
        resp
    }

    /// Serves the simulator on `addr` (e.g. "127.0.0.1:0") until the handle is dropped.
    pub fn serve(self: &Arc<Self>, addr: &str) -> std::io::Result<ServerHandle> {
        let sim = Arc::clone(self);
        server::serve(addr, Arc::new(move |req: &SimRequest| sim.handle(req)))
    }
}

fn take_fault(faults: &mut VecDeque<Fault>, op: Operation) -> Option<FaultAction> {
    let i = faults
        .iter()
        .position(|f| f.times > 0 && f.operation.is_none_or(|o| o == op))?;
    let fault = &mut faults[i];
    fault.times -= 1;
    let action = fault.action.clone();
    if fault.times == 0 {
        faults.remove(i);
    }
    Some(action)
}

fn apply_fault(action: FaultAction, mut resp: SimResponse) -> SimResponse {
    match action {
        FaultAction::Status {
            status,
            content_type,
            body,
            retry_after,
        } => {
            let mut headers = vec![("Content-Type".to_string(), content_type)];
            if let Some(secs) = retry_after {
                headers.push(("Retry-After".into(), secs.to_string()));
            }
            SimResponse {
                status,
                headers,
                body: body.into_bytes(),
                delay: None,
                truncate_at: None,
                stall: None,
            }
        }
        FaultAction::Delay(d) => {
            resp.delay = Some(d);
            resp
        }
        FaultAction::MalformedJson => {
            let keep = resp.body.len() / 2;
            resp.body.truncate(keep);
            resp
        }
        FaultAction::TruncatedBody => {
            resp.truncate_at = Some(resp.body.len() / 2);
            resp
        }
        FaultAction::StallMidBody(d) => {
            resp.stall = Some(d);
            resp
        }
        FaultAction::ChangeMembers { .. } => resp,
    }
}

/// Builds the JSON for a group as Grouper lists it (`wsGroup` / `wsGroupAssigned`).
pub(crate) fn group_json(g: &Group, legacy: bool) -> Value {
    let extension = g.name.rsplit(':').next().unwrap_or(&g.name);
    let display_extension = g.display_name.rsplit(':').next().unwrap_or(&g.display_name);
    let mut m = Map::new();
    m.insert("description".into(), g.description.clone().into());
    m.insert("displayExtension".into(), display_extension.into());
    m.insert("displayName".into(), g.display_name.clone().into());
    if !legacy {
        m.insert("enabled".into(), "T".into());
    }
    m.insert("extension".into(), extension.into());
    m.insert("idIndex".into(), g.id_index.to_string().into());
    m.insert("name".into(), g.name.clone().into());
    m.insert("typeOfGroup".into(), "group".into());
    m.insert("uuid".into(), g.uuid.clone().into());
    Value::Object(m)
}

pub(crate) fn meta(code: &str, success: bool, message: Option<String>) -> Value {
    let mut m = json!({"resultCode": code, "success": if success { "T" } else { "F" }});
    if let Some(msg) = message {
        m["resultMessage"] = msg.into();
    }
    m
}
