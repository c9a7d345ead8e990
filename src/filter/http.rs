//! HttpContext: read the request headers, ask the core for a decision, act on it.

use super::millis;
use super::root::Shared;
use crate::decision::{decide, Decision, Request};
use log::debug;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct Http {
    shared: Rc<Shared>,
}

impl Http {
    pub fn new(shared: Rc<Shared>) -> Self {
        Http { shared }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers: Vec<(String, Vec<u8>)> = self.get_http_request_headers_bytes();
        let method = self
            .get_http_request_header_bytes(":method")
            .unwrap_or_default();
        let path = self
            .get_http_request_header_bytes(":path")
            .unwrap_or_default();
        let request = Request {
            method: &method,
            path: &path,
            headers: &headers,
        };
        let now = millis(self.get_current_time()) / 1000;
        let decision = {
            let keys = self.shared.keys.borrow();
            decide(&request, &self.shared.config, &keys, now)
        };
        match decision {
            Decision::Allow(allowed) => {
                debug!("cognito-edge-auth: allowed ({})", allowed.reason);
                for name in &allowed.remove {
                    self.set_http_request_header(name, None);
                }
                for (name, value) in &allowed.set {
                    self.set_http_request_header(name, Some(value));
                }
                Action::Continue
            }
            Decision::Deny(denied) => {
                debug!(
                    "cognito-edge-auth: denied {} ({})",
                    denied.response.status, denied.reason
                );
                let r = &denied.response;
                let headers: Vec<(&str, &str)> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                self.send_http_response(r.status, headers, Some(r.body.as_bytes()));
                Action::Pause
            }
        }
    }
}
