//! A stand-in for Cognito's `GetUser` (moto does not implement its scope rule): it answers as
//! the API reference documents, with the status, `__type`, `message` and `x-amzn-errortype`
//! of each kind, for the users and the service state the test sets.
//!
//! A token is judged as Cognito judges it: no `aws.cognito.signin.user.admin` in `scope` →
//! 400 `NotAuthorizedException` "Access Token does not have required scopes"; past `exp` →
//! "Access Token has expired"; a user signed out (`GlobalSignOut`) → "Access Token has been
//! revoked"; disabled → "User is disabled."; deleted → 400 `UserNotFoundException` "User does
//! not exist."; otherwise 200 with the user. The service itself may throttle (400
//! `TooManyRequestsException`), fail (500 `InternalErrorException`) or answer something no
//! reference documents.
//!
//! `AdminUserGlobalSignOut` (`UserPoolId`, `Username`) signs a user out as Cognito does: every
//! access token of that user the service has seen so far is revoked; tokens issued after it
//! are good.

use super::tokens::ADMIN_SCOPE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// What Cognito knows of a user (by `sub`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Active,
    SignedOut,
    Disabled,
    Deleted,
    /// A pool whose pre-token-generation trigger put the scope in the claims but Cognito
    /// does not grant it: answered as a token without it.
    ScopeRefused,
}

/// How the service answers whatever the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Normal,
    Throttling,
    Failing,
    /// An HTML error page from something in front of the service: no documented shape.
    Garbled,
}

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    service: Option<Service>,
    /// Calls for these subs wait until released.
    held: HashSet<String>,
    /// Every call, by sub (`-` for a token that could not be read).
    calls: Vec<String>,
    /// The access tokens seen, as (`username`, `jti`).
    seen: Vec<(String, String)>,
    /// The `jti`s of access tokens revoked by `AdminUserGlobalSignOut`.
    revoked: HashSet<String>,
}

pub struct Cognito {
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Cognito {
    pub fn start() -> Cognito {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(conn, &st));
            }
        });
        Cognito { port, state, stop }
    }

    pub fn set_user(&self, sub: &str, user: User) {
        self.state.0.lock().unwrap().users.insert(sub.into(), user);
    }

    pub fn set_service(&self, service: Service) {
        self.state.0.lock().unwrap().service = Some(service);
    }

    /// Calls for `sub` wait until [`Cognito::release`].
    pub fn hold(&self, sub: &str) {
        self.state.0.lock().unwrap().held.insert(sub.into());
    }

    pub fn release(&self, sub: &str) {
        self.state.0.lock().unwrap().held.remove(sub);
        self.state.1.notify_all();
    }

    pub fn calls(&self) -> usize {
        self.state.0.lock().unwrap().calls.len()
    }

    pub fn calls_for(&self, sub: &str) -> usize {
        let state = self.state.0.lock().unwrap();
        state.calls.iter().filter(|s| *s == sub).count()
    }
}

impl Drop for Cognito {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.0.lock().unwrap().held.clear();
        self.state.1.notify_all();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, state: &(Mutex<State>, Condvar)) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let (mut length, mut target) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            match n.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "x-amz-target" => target = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let claims = request["AccessToken"].as_str().and_then(payload);
    let sub = claims
        .as_ref()
        .and_then(|c| c["sub"].as_str())
        .unwrap_or("-")
        .to_string();
    let (status, kind, answer) = {
        let (lock, released) = state;
        let mut s = lock.lock().unwrap();
        if target == "AWSCognitoIdentityProviderService.AdminUserGlobalSignOut" {
            sign_out(&mut s, &request)
        } else {
            s.calls.push(sub.clone());
            if let Some(c) = &claims {
                let field = |n: &str| c[n].as_str().unwrap_or_default().to_string();
                let token = (field("username"), field("jti"));
                s.seen.push(token);
            }
            while s.held.contains(&sub) {
                s = released.wait(s).unwrap();
            }
            get_user(&s, &target, claims.as_ref())
        }
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: 6f4a1e2c-0000-4000-8000-000000000000\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.len()
    );
    if let Some(kind) = kind {
        head.push_str(&format!(
            "x-amzn-errortype: {kind}:http://internal.amazon.com/coral/com.amazonaws.swbup.service/\r\n"
        ));
    }
    head.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.shutdown(Shutdown::Both);
}

/// `AdminUserGlobalSignOut`: the user's access tokens seen so far are revoked.
fn sign_out(s: &mut State, request: &Value) -> (u16, Option<&'static str>, String) {
    let Some(username) = request["Username"].as_str() else {
        let body = json!({ "__type": "InvalidParameterException", "message": "Username" });
        return (400, Some("InvalidParameterException"), body.to_string());
    };
    let jtis: Vec<String> = s
        .seen
        .iter()
        .filter(|(u, _)| u == username)
        .map(|(_, jti)| jti.clone())
        .collect();
    s.revoked.extend(jtis);
    (200, None, "{}".into())
}

/// Cognito's answer: status, error type (for the header), body.
fn get_user(
    s: &State,
    target: &str,
    claims: Option<&Value>,
) -> (u16, Option<&'static str>, String) {
    let error = |status, kind: &'static str, message: &str| {
        let body = json!({ "__type": kind, "message": message }).to_string();
        (status, Some(kind), body)
    };
    match s.service.unwrap_or(Service::Normal) {
        Service::Throttling => return error(400, "TooManyRequestsException", "Rate exceeded"),
        Service::Failing => return error(500, "InternalErrorException", "Internal server error"),
        Service::Garbled => {
            return (400, None, "<html><body>Bad Request</body></html>".into());
        }
        Service::Normal => {}
    }
    if target != "AWSCognitoIdentityProviderService.GetUser" {
        return error(400, "UnknownOperationException", "");
    }
    let Some(claims) = claims else {
        return error(400, "NotAuthorizedException", "Invalid Access Token");
    };
    let scoped = claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|s| s == ADMIN_SCOPE));
    let sub = claims["sub"].as_str().unwrap_or_default();
    let user = s.users.get(sub).copied().unwrap_or(User::Active);
    if !scoped || user == User::ScopeRefused {
        return error(
            400,
            "NotAuthorizedException",
            "Access Token does not have required scopes",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
        return error(400, "NotAuthorizedException", "Access Token has expired");
    }
    let revoked = claims["jti"]
        .as_str()
        .is_some_and(|jti| s.revoked.contains(jti));
    match user {
        _ if revoked => error(
            400,
            "NotAuthorizedException",
            "Access Token has been revoked",
        ),
        User::SignedOut => error(
            400,
            "NotAuthorizedException",
            "Access Token has been revoked",
        ),
        User::Disabled => error(400, "NotAuthorizedException", "User is disabled."),
        User::Deleted => error(400, "UserNotFoundException", "User does not exist."),
        User::Active | User::ScopeRefused => {
            let body = json!({
                "Username": claims["username"].as_str().unwrap_or(sub),
                "UserAttributes": [{ "Name": "sub", "Value": sub }],
                "UserMFASettingList": [],
            });
            (200, None, body.to_string())
        }
    }
}

/// A JWT's payload (the stand-in trusts the filter to have verified the signature).
fn payload(token: &str) -> Option<Value> {
    let part = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}
