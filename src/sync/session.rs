//! The I/O context of one pass or check: the transport, the retry policy, and the count of
//! requests sent to each service.

use crate::error::{Service, SyncError};
use crate::settings::Settings;
use crate::sync::log::{LogTo, Logger};
use crate::sync::report::{Change, ChangeSink, ConfirmedBatch, Requests, TargetReport};
use crate::wire::http::{send_with_retries, Outcome, Request, Response, Transport};

pub struct Session<'a> {
    pub settings: &'a Settings,
    transport: &'a mut dyn Transport,
    pub log: Logger,
    pub requests: Requests,
    /// The pass's Google access token, once fetched (never logged: its Debug hides it).
    pub google_token: Option<crate::wire::google::AccessToken>,
    sink: Option<&'a mut dyn ChangeSink>,
}

impl<'a> Session<'a> {
    pub fn new(settings: &'a Settings, transport: &'a mut dyn Transport) -> Self {
        Session {
            settings,
            transport,
            log: Logger::new(settings.log_level),
            requests: Requests::default(),
            google_token: None,
            sink: None,
        }
    }

    /// A session that hands every confirmed write batch to `sink` at once.
    pub fn with_sink(mut self, sink: &'a mut dyn ChangeSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// A session whose log records go where this says.
    pub fn logging_to(mut self, to: LogTo) -> Self {
        self.log.to = to;
        self
    }

    /// Records changes a service just confirmed for the target of `report`: in the report, and
    /// at once in the sink.
    pub fn confirmed(&mut self, written: &str, report: &mut TargetReport, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        if let Some(sink) = self.sink.as_deref_mut() {
            sink.confirmed(&ConfirmedBatch {
                target: report.group.clone(),
                direction: report.direction,
                hub_group: report.hub_group.clone(),
                written: written.to_string(),
                approved_plan: report.approved_plan.clone(),
                changes: changes.clone(),
            });
        }
        report.changes.extend(changes);
    }

    /// Sends requests to one service with up to `in_flight` outstanding, retrying transient
    /// failures; one outcome per request, in order.
    pub fn send_all(
        &mut self,
        service: Service,
        requests: &[Request],
        in_flight: usize,
    ) -> Vec<Outcome> {
        let h = &self.settings.http;
        let (out, sent) =
            send_with_retries(self.transport, requests, in_flight, h.retries, h.backoff);
        match service {
            Service::Hub => self.requests.jupyterhub += sent,
            Service::Grouper => self.requests.grouper += sent,
            Service::Google => self.requests.google += sent,
        }
        out
    }

    /// Sends one request; a transport failure becomes a typed error saying `what` was attempted.
    pub fn send(
        &mut self,
        service: Service,
        what: &str,
        request: &Request,
    ) -> Result<Response, SyncError> {
        let outcome = self
            .send_all(service, std::slice::from_ref(request), 1)
            .pop()
            .expect("one outcome per request");
        outcome.map_err(|e| SyncError::transport(service, what, &e))
    }
}
