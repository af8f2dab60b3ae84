//! What the dashboard's tests share: its router called in process, a host with the functions
//! they need, and small readers of its pages.
#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;

use axum::body::Body;
use chrono::Utc;
use durable::http::HttpOptions;
use durable::prelude::*;
use durable::store::NewInstance;
use durable::testing::TestRuntime;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::http_api::{self, Counter, builder, hello};

/// An answer: status, headers, body text.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.status, 200, "body: {}", self.body);
        &self.body
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The dashboard of one client, in process.
pub struct Dash {
    pub router: axum::Router,
}

impl Dash {
    pub fn new(client: Client, options: HttpOptions) -> Dash {
        Dash {
            router: durable::http::dashboard::router(client, Arc::new(options)),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = http_api::header_list(response.headers());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str) -> Page {
        self.call("GET", uri, "", &[]).await
    }

    /// An action as the page's script sends it.
    pub async fn act(&self, uri: &str, body: Value) -> Page {
        self.call(
            "POST",
            uri,
            &body.to_string(),
            &[
                ("x-durable-dashboard", "1"),
                ("content-type", "application/json"),
            ],
        )
        .await
    }
}

pub async fn host() -> TestRuntime {
    TestRuntime::start(builder().register(parent_flow).register(hold_lock))
        .await
        .unwrap()
}

pub fn dash(rt: &TestRuntime) -> Dash {
    Dash::new(rt.client(), HttpOptions::default())
}

#[orchestrator]
pub async fn parent_flow(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    ctx.call_sub_orchestrator(hello, ())
        .instance_id("child-of-parent")
        .await
}

#[orchestrator]
pub async fn hold_lock(ctx: OrchestrationContext, key: String) -> Result<(), Error> {
    let _guard = ctx.lock_entities([EntityId::of::<Counter>(key)]).await?;
    let _: bool = ctx.wait_for_event("Release").await?;
    Ok(())
}

/// The rows of the instance table, by their `data-id`.
pub fn listed_ids(html: &str) -> Vec<String> {
    html.split("<tr data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

pub fn new_instance(id: &str, created_at: chrono::DateTime<Utc>) -> NewInstance {
    NewInstance {
        instance_id: id.into(),
        name: "flow".into(),
        input: "null".into(),
        execution_id: format!("{id}-e1"),
        parent: None,
        created_at,
        start_at: None,
        replace_running: false,
        version: None,
    }
}
