//! HTTP helpers of the black-box harness: calls on the public and internal
//! APIs as a given user, and the shapes several tests read back (a history
//! page's sequences, the store's unread truth).

use super::TestServer;
use magpie_core::{ClientMsgId, ConvId, UserId};
use magpie_proto::http::{ConnectResponse, Tokens};
use serde_json::{Value, json};

impl TestServer {
    /// POST/GET on the public API returning (status, json body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(&self.base, method, path, token, body).await
    }

    /// Like `call`, on any base URL.
    pub async fn call_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{base}{path}");
        let mut req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            "PATCH" => self.http.patch(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `method path` on this node's internal API with the service key
    /// (docs/protocol.md §3.13).
    pub async fn operator(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let key = self.app().cfg.internal.service_key.clone();
        self.call_at(&self.internal(), method, path, Some(&key), body)
            .await
    }

    pub async fn user(&self, name: &str, device: &str) -> Tokens {
        let (s, _) = self
            .call(
                "POST",
                "/v1/auth/register",
                None,
                Some(json!({"username": name, "password": "password123"})),
            )
            .await;
        assert!(s == 201 || s == 409, "register {name}: {s}");
        self.login(name, device).await
    }

    pub async fn login(&self, name: &str, device: &str) -> Tokens {
        let (s, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": name, "password": "password123", "device": device})),
            )
            .await;
        assert_eq!(s, 200, "login: {body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn http_send(
        &self,
        t: &Tokens,
        to: UserId,
        cmid: ClientMsgId,
        body: &str,
    ) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/messages",
            Some(&t.access_token),
            Some(json!({"to": to, "cmid": cmid, "body": body})),
        )
        .await
    }

    /// `http_send`, retried with the same `cmid` while the node answers 503
    /// (a backend failing over or coming back), for at most 60 s.
    pub async fn send_until_accepted(
        &self,
        from: &Tokens,
        to: UserId,
        cmid: ClientMsgId,
        body: &str,
    ) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, answer) = self.http_send(from, to, cmid, body).await;
            if status == 200 {
                return;
            }
            assert!(
                status == 503 && tokio::time::Instant::now() < deadline,
                "send {body}: {status} {answer}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Creates a group owned by `owner` with `members` over HTTP; its id.
    pub async fn create_group(&self, owner: &Tokens, members: &[UserId]) -> i64 {
        let body = json!({"name": "group", "members": members});
        let (status, body) = self.send_json(owner, "POST", "/v1/groups", body).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    pub async fn ticket(&self, t: &Tokens, transport: &str) -> ConnectResponse {
        let (s, body) = self
            .call(
                "POST",
                "/v1/connect",
                Some(&t.access_token),
                Some(json!({"transport": transport})),
            )
            .await;
        assert_eq!(s, 200, "connect: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// `GET path` as the holder of `t`.
    pub async fn get(&self, t: &Tokens, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(&t.access_token), None).await
    }

    /// `method path` with a JSON body as the holder of `t`.
    pub async fn send_json(
        &self,
        t: &Tokens,
        method: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        self.call(method, path, Some(&t.access_token), Some(body))
            .await
    }

    /// A page of `conv`'s history as `t` sees it; `query` is empty or
    /// starts with `?` (e.g. `?after=0&limit=100`).
    pub async fn history(&self, t: &Tokens, conv: &ConvId, query: &str) -> (u16, Value) {
        self.get(t, &format!("/v1/conversations/{conv}/messages{query}"))
            .await
    }

    /// Marks `conv` read up to `seq` for `t` over HTTP.
    pub async fn read(&self, t: &Tokens, conv: &ConvId, seq: i64) -> (u16, Value) {
        let path = format!("/v1/conversations/{conv}/read");
        self.send_json(t, "POST", &path, json!({"seq": seq})).await
    }

    /// `PUT /v1/settings{query}` as `t`, which must succeed.
    pub async fn set_settings(&self, t: &Tokens, query: &str, body: Value) {
        let (st, resp) = self
            .send_json(t, "PUT", &format!("/v1/settings{query}"), body)
            .await;
        assert_eq!(st, 200, "settings{query}: {resp}");
    }

    /// Registers (or finds) and logs in each of `names` on device `phone`.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [Tokens; N] {
        let mut out = Vec::with_capacity(N);
        for name in names {
            out.push(self.user(name, "phone").await);
        }
        out.try_into()
            .unwrap_or_else(|_| unreachable!("one per name"))
    }
}

/// The sequences of a history page's messages, in page order.
pub fn page_seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("not a history page: {page}"))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// The user's unread total as the store computes it from scratch: the truth
/// a cached count must equal.
pub async fn unread_truth(store: &magpie_store::Store, user: UserId) -> i64 {
    store
        .messages()
        .conversations(user)
        .await
        .unwrap()
        .iter()
        .map(|c| c.unread)
        .sum()
}
