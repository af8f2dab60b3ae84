//! The HTTP management API: every endpoint and status code, each test run twice — in process
//! (the axum router called directly) and over a real loopback socket (the host's server).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use durable::http::{HttpOptions, api};
use durable::prelude::*;
use durable::testing::TestRuntime;
use durable_tests::WAIT;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

const BASE: &str = "/runtime/webhooks/durabletask";

#[activity]
async fn greet(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

#[orchestrator]
async fn hello(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for city in ["Tokyo", "London"] {
        out.push(ctx.call_activity(greet, city.to_string()).await?);
    }
    Ok(out)
}

#[orchestrator]
async fn approval(ctx: OrchestrationContext, who: String) -> Result<String, Error> {
    ctx.set_custom_status("waiting");
    let ok: bool = ctx.wait_for_event("Approval").await?;
    Ok(format!(
        "{who}: {}",
        if ok { "approved" } else { "rejected" }
    ))
}

#[orchestrator]
async fn echo(_ctx: OrchestrationContext, input: Value) -> Result<Value, Error> {
    Ok(input)
}

#[orchestrator]
async fn broken(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    Err(Error::msg("broken on purpose"))
}

/// Fails on its first call in each test run, then succeeds.
static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[activity]
async fn flaky_step(_ctx: ActivityContext, _input: ()) -> Result<String, Error> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        return Err(Error::msg("the first attempt fails"));
    }
    Ok("second time lucky".to_string())
}

#[orchestrator]
async fn flaky(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ctx.call_activity(flaky_step, ()).await
}

#[derive(Default, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

#[entity]
impl Counter {
    pub fn add(&mut self, amount: i64) {
        self.value += amount;
    }

    pub fn get(&self) -> i64 {
        self.value
    }
}

fn builder() -> durable::RuntimeBuilder {
    Runtime::builder()
        .register(greet)
        .register(hello)
        .register(approval)
        .register(echo)
        .register(broken)
        .register(flaky_step)
        .register(flaky)
        .register_entity::<Counter>()
}

/// A response: status, headers and the body parsed as JSON (null when empty).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status only.
    #[track_caller]
    fn expect_code(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts the status and, for an error, that the body is the JSON error shape.
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        if status >= 400 {
            let error: api::ErrorBody = serde_json::from_value(self.body.clone())
                .unwrap_or_else(|e| panic!("error body is not JSON {{error, message}}: {e}"));
            assert!(!error.message.is_empty());
            // Durable Functions' clients read `Message` and `ExceptionMessage`.
            assert_eq!(error.message_compat, error.message, "{}", self.body);
            assert_eq!(error.exception_message, error.message, "{}", self.body);
        }
        self
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

enum Transport {
    InProcess(axum::Router),
    Socket(reqwest::Client, String),
}

/// The API as a client sees it, in one of the two transports.
struct Api {
    transport: Transport,
    host: String,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{BASE}/{path}")
        };
        match &self.transport {
            Transport::InProcess(router) => {
                let mut request = axum::http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("host", &self.host);
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                let request = request
                    .body(Body::from(body.unwrap_or_default().to_string()))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let headers = header_list(response.headers());
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                Reply {
                    status,
                    headers,
                    body: parse(&bytes),
                }
            }
            Transport::Socket(client, base) => {
                let mut request = client.request(method.parse().unwrap(), format!("{base}{url}"));
                for (k, v) in headers {
                    request = request.header(*k, *v);
                }
                if let Some(body) = body {
                    request = request.body(body.to_string());
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let headers = header_list(response.headers());
                let bytes = response.bytes().await.unwrap();
                Reply {
                    status,
                    headers,
                    body: parse(&bytes),
                }
            }
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Option<&str>) -> Reply {
        self.call("POST", path, body, &[]).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, &[]).await
    }

    /// Starts `name` with `input` and returns the instance id.
    async fn start(&self, name: &str, input: Option<&str>) -> String {
        let reply = self.post(&format!("orchestrators/{name}"), input).await;
        reply.expect(202);
        reply.body["id"].as_str().unwrap().to_string()
    }
}

fn header_list(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect()
}

fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    }
}

/// Runs `scenario` in process and over a socket, each on a fresh host.
async fn both<F, Fut>(options: impl Fn(HttpOptions) -> HttpOptions, scenario: F)
where
    F: Fn(Api, Arc<TestRuntime>) -> Fut,
    Fut: Future<Output = ()>,
{
    let loopback = "127.0.0.1:0".parse().unwrap();
    // In process: the router alone, on the host's client.
    let rt = Arc::new(TestRuntime::start(builder()).await.unwrap());
    let opts = options(HttpOptions::default());
    assert_eq!(
        opts.addr().to_string(),
        "127.0.0.1:7071",
        "loopback by default"
    );
    let router = durable::http::router(rt.client(), Arc::new(opts));
    println!("--- in process");
    scenario(
        Api {
            transport: Transport::InProcess(router),
            host: "localhost:7071".to_string(),
        },
        rt.clone(),
    )
    .await;
    rt.shutdown().await;
    // Over a real socket: the host serves it.
    let rt = Arc::new(
        TestRuntime::start(builder().http_options(options(HttpOptions::new(loopback))))
            .await
            .unwrap(),
    );
    let addr = rt.http_addr().expect("the host listens");
    assert!(addr.ip().is_loopback());
    println!("--- over a socket at {addr}");
    scenario(
        Api {
            transport: Transport::Socket(reqwest::Client::new(), format!("http://{addr}")),
            host: addr.to_string(),
        },
        rt.clone(),
    )
    .await;
    rt.shutdown().await;
}

fn plain(o: HttpOptions) -> HttpOptions {
    o
}

async fn done(rt: &TestRuntime, id: &str) {
    rt.client().wait_for_completion(id, WAIT).await.unwrap();
}

#[tokio::test]
async fn async_http_pattern_start_poll_202_then_200_with_the_output() {
    both(plain, |api, rt| async move {
        let started = api.post("orchestrators/approval", Some(r#""ann""#)).await;
        started.expect(202);
        let links: api::CheckStatus = serde_json::from_value(started.body.clone()).unwrap();
        let instance = format!("http://{}{BASE}/instances/{}", api.host, links.id);
        assert_eq!(
            started.header("location"),
            Some(links.status_query_get_uri.as_str())
        );
        assert_eq!(started.header("retry-after"), Some("10"));
        assert!(
            links
                .status_query_get_uri
                .starts_with(&format!("{instance}?taskHub="))
        );
        assert!(
            links
                .send_event_post_uri
                .starts_with(&format!("{instance}/raiseEvent/{{eventName}}?"))
        );
        assert!(
            links
                .terminate_post_uri
                .starts_with(&format!("{instance}/terminate?reason={{text}}&"))
        );
        assert!(
            links
                .rewind_post_uri
                .starts_with(&format!("{instance}/rewind?reason={{text}}&"))
        );
        assert!(
            links
                .suspend_post_uri
                .starts_with(&format!("{instance}/suspend?reason={{text}}&"))
        );
        assert!(
            links
                .resume_post_uri
                .starts_with(&format!("{instance}/resume?reason={{text}}&"))
        );
        assert!(
            links
                .restart_post_uri
                .starts_with(&format!("{instance}/restart?"))
        );
        assert!(
            links
                .purge_history_delete_uri
                .starts_with(&format!("{instance}?"))
        );
        for field in [
            "id",
            "statusQueryGetUri",
            "sendEventPostUri",
            "terminatePostUri",
            "purgeHistoryDeleteUri",
            "restartPostUri",
            "suspendPostUri",
            "resumePostUri",
        ] {
            assert!(
                started.body.get(field).is_some(),
                "the check-status body has `{field}`"
            );
        }

        rt.client().wait_for_start(&links.id, WAIT).await.unwrap();
        rt.idle().await;
        let status_path = format!("instances/{}", links.id);
        let running = api.get(&status_path).await;
        running.expect(202);
        assert_eq!(running.header("retry-after"), Some("5"));
        assert_eq!(
            running.header("location"),
            Some(format!("http://{}{BASE}/{status_path}", api.host).as_str())
        );
        assert_eq!(running.body["runtimeStatus"], "Running");
        assert_eq!(running.body["name"], "approval");
        assert_eq!(running.body["instanceId"], links.id.as_str());
        assert_eq!(running.body["input"], "ann");
        assert_eq!(running.body["customStatus"], "waiting");
        assert_eq!(running.body["output"], Value::Null);
        assert!(running.body.get("historyEvents").is_none());
        let created = running.body["createdTime"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok()
                && created.ends_with('Z')
                && !created.contains('.'),
            "{created}"
        );

        api.post(
            &format!("instances/{}/raiseEvent/Approval", links.id),
            Some("true"),
        )
        .await
        .expect(202);
        done(&rt, &links.id).await;
        let finished = api.get(&status_path).await;
        finished.expect(200);
        assert!(finished.header("location").is_none());
        assert_eq!(finished.body["runtimeStatus"], "Completed");
        assert_eq!(finished.body["output"], "ann: approved");
    })
    .await;
}

#[tokio::test]
async fn start_with_an_id_and_the_bad_starts() {
    both(plain, |api, rt| async move {
        let reply = api
            .post("orchestrators/approval/order-7", Some(r#""bob""#))
            .await;
        reply.expect(202);
        assert_eq!(reply.body["id"], "order-7");
        // Python's client sends the input as a JSON string holding JSON.
        let id = api.start("echo", Some(r#""{\"a\": [1, 2]}""#)).await;
        done(&rt, &id).await;
        let status = api.get(&format!("instances/{id}")).await;
        assert_eq!(status.body["output"], json!({"a": [1, 2]}));
        // No body is a null input; hello takes ().
        let id = api.start("hello", None).await;
        done(&rt, &id).await;
        assert_eq!(
            api.get(&format!("instances/{id}")).await.body["output"],
            json!(["Hello Tokyo!", "Hello London!"])
        );

        let again = api
            .post("orchestrators/approval/order-7", Some(r#""bob""#))
            .await;
        again.expect(409);
        assert!(again.message().contains("order-7"), "{}", again.message());
        let entity_like = api.post("orchestrators/echo/@counter@x", None).await;
        entity_like.expect(400);
        assert!(
            entity_like.message().contains("`@`"),
            "{}",
            entity_like.message()
        );
        let unknown = api.post("orchestrators/nope", None).await;
        unknown.expect(400);
        assert!(unknown.message().contains("nope"), "{}", unknown.message());
        let bad = api.post("orchestrators/echo", Some("{not json")).await;
        bad.expect(400);
        assert!(
            bad.message().contains("not valid JSON"),
            "{}",
            bad.message()
        );
        // An input that does not fit the orchestrator's input type is refused at once, not
        // accepted and failed later.
        let mistyped = api.post("orchestrators/approval", Some("42")).await;
        mistyped.expect(400);
        assert!(
            mistyped
                .message()
                .contains("the input of orchestrator `approval` does not fit its input type"),
            "{}",
            mistyped.message()
        );
        assert_eq!(mistyped.body["error"], "Serialization");
        let no_input = api.post("orchestrators/approval", None).await;
        no_input.expect(400);
        // Durable Functions' JavaScript client sends `""` when it has no input: no input for an
        // orchestrator taking `()`, the empty string for one taking a string or any JSON.
        let unit = api.post("orchestrators/hello", Some(r#""""#)).await;
        unit.expect(202);
        let finished = rt
            .client()
            .wait_for_completion(unit.body["id"].as_str().unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(
            finished.runtime_status,
            RuntimeStatus::Completed,
            "{finished:?}"
        );
        api.post("orchestrators/approval", Some(r#""""#))
            .await
            .expect(202);
        let big = format!("\"{}\"", "x".repeat(5 * 1024 * 1024));
        api.post("orchestrators/echo", Some(&big)).await.expect(413);
        api.post("orchestrators/echo?taskHub=other", None)
            .await
            .expect(400);
        // The task hub the links carry is accepted.
        api.post(
            &format!("orchestrators/echo?taskHub={}", rt.store().task_hub()),
            None,
        )
        .await
        .expect(202);
    })
    .await;
}

#[tokio::test]
async fn status_flags_history_and_failures() {
    both(plain, |api, rt| async move {
        let id = api.start("hello", None).await;
        done(&rt, &id).await;
        let plain = api.get(&format!("instances/{id}?showInput=False")).await;
        plain.expect(200);
        assert_eq!(plain.body["input"], Value::Null);
        let history = api.get(&format!("instances/{id}?showHistory=True")).await;
        history.expect(200);
        let events = history.body["historyEvents"].as_array().unwrap();
        // The name Durable Functions' own clients read, beside the extension's.
        assert_eq!(history.body["history"], history.body["historyEvents"]);
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["EventType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ExecutionStarted",
                "TaskCompleted",
                "TaskCompleted",
                "ExecutionCompleted"
            ]
        );
        assert_eq!(events[0]["FunctionName"], "hello");
        assert_eq!(events[1]["FunctionName"], "greet");
        assert!(events[1]["ScheduledTime"].is_string());
        assert!(
            events[1].get("Result").is_none(),
            "results only with showHistoryOutput"
        );
        let with_output = api
            .get(&format!(
                "instances/{id}?showHistory=true&showHistoryOutput=true"
            ))
            .await;
        assert_eq!(
            with_output.body["historyEvents"][1]["Result"],
            "Hello Tokyo!"
        );
        assert_eq!(
            with_output.body["historyEvents"][3]["OrchestrationStatus"],
            "Completed"
        );
        let garbage = api.get(&format!("instances/{id}?showHistory=yes")).await;
        garbage.expect(400);
        assert!(
            garbage.message().contains("showHistory=true"),
            "{}",
            garbage.message()
        );
        api.get("instances/no-such-instance").await.expect(404);

        let id = api.start("broken", None).await;
        done(&rt, &id).await;
        let failed = api.get(&format!("instances/{id}")).await;
        failed.expect(200);
        assert_eq!(failed.body["runtimeStatus"], "Failed");
        assert!(
            failed.body["output"]
                .as_str()
                .unwrap()
                .contains("broken on purpose")
        );
        api.get(&format!(
            "instances/{id}?returnInternalServerErrorOnFailure=true"
        ))
        .await
        .expect_code(500);
    })
    .await;
}

#[tokio::test]
async fn query_filters_and_pages() {
    both(plain, |api, rt| async move {
        let mut done_ids = Vec::new();
        for i in 0..3 {
            let reply = api
                .post(&format!("orchestrators/hello/q-done-{i}"), None)
                .await;
            reply.expect(202);
            done_ids.push(format!("q-done-{i}"));
        }
        for id in &done_ids {
            done(&rt, id).await;
        }
        api.post("orchestrators/approval/q-waiting", Some(r#""x""#))
            .await
            .expect(202);
        rt.client().wait_for_start("q-waiting", WAIT).await.unwrap();

        let all = api.get("instances").await;
        all.expect(200);
        assert_eq!(all.body.as_array().unwrap().len(), 4);
        // The Python client asks for the collection with a trailing slash.
        let slash = api.get("instances/?showInput=True").await;
        slash.expect(200);
        assert_eq!(slash.body.as_array().unwrap().len(), 4);
        assert_eq!(
            all.body[0]["input"],
            Value::Null,
            "inputs only with showInput"
        );
        let completed = api.get("instances?runtimeStatus=Completed,Failed").await;
        assert_eq!(completed.body.as_array().unwrap().len(), 3);
        let running = api
            .get("instances?runtimeStatus=Running&showInput=true")
            .await;
        assert_eq!(running.body[0]["instanceId"], "q-waiting");
        assert_eq!(running.body[0]["input"], "x");
        let prefixed = api.get("instances?instanceIdPrefix=q-done-1").await;
        assert_eq!(prefixed.body.as_array().unwrap().len(), 1);
        let future = api
            .get("instances?createdTimeFrom=2999-01-01T00:00:00Z")
            .await;
        assert_eq!(future.body, json!([]));

        // Paging with the continuation header.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10 {
            let headers: Vec<(&str, &str)> = token
                .iter()
                .map(|t| ("x-ms-continuation-token", t.as_str()))
                .collect();
            let page = api.call("GET", "instances?top=1", None, &headers).await;
            page.expect(200);
            for item in page.body.as_array().unwrap() {
                seen.push(item["instanceId"].as_str().unwrap().to_string());
            }
            token = page.header("x-ms-continuation-token").map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, ["q-done-0", "q-done-1", "q-done-2", "q-waiting"]);

        let bad = api.get("instances?runtimeStatus=Runing").await;
        bad.expect(400);
        assert!(bad.message().contains("Runing"), "{}", bad.message());
        api.get("instances?createdTimeFrom=yesterday")
            .await
            .expect(400);
        api.get("instances?top=0").await.expect(400);
        api.call(
            "GET",
            "instances",
            None,
            &[("x-ms-continuation-token", "forged")],
        )
        .await
        .expect(400);
    })
    .await;
}

#[tokio::test]
async fn events_terminate_suspend_resume() {
    both(plain, |api, rt| async move {
        let id = api.start("approval", Some(r#""cy""#)).await;
        rt.client().wait_for_start(&id, WAIT).await.unwrap();
        api.post(
            &format!("instances/{id}/raiseEvent/Approval"),
            Some("{oops"),
        )
        .await
        .expect(400);
        api.post("instances/nobody/raiseEvent/Approval", Some("true"))
            .await
            .expect(404);

        api.post(&format!("instances/{id}/suspend?reason=lunch"), None)
            .await
            .expect(202);
        rt.idle().await;
        assert_eq!(
            api.get(&format!("instances/{id}")).await.body["runtimeStatus"],
            "Suspended"
        );
        api.post(&format!("instances/{id}/resume?reason=back"), None)
            .await
            .expect(202);
        rt.idle().await;
        let resumed = api.get(&format!("instances/{id}")).await;
        resumed.expect(202);
        assert_eq!(resumed.body["runtimeStatus"], "Running");

        api.post(
            &format!("instances/{id}/terminate?reason=changed%20my%20mind"),
            None,
        )
        .await
        .expect(202);
        done(&rt, &id).await;
        let terminated = api.get(&format!("instances/{id}")).await;
        terminated.expect(200);
        assert_eq!(terminated.body["runtimeStatus"], "Terminated");
        assert_eq!(terminated.body["output"], "changed my mind");

        for action in ["terminate", "suspend", "resume"] {
            let gone = api.post(&format!("instances/{id}/{action}"), None).await;
            gone.expect(410);
            api.post(&format!("instances/nobody/{action}"), None)
                .await
                .expect(404);
        }
        let gone = api
            .post(&format!("instances/{id}/raiseEvent/Approval"), Some("true"))
            .await;
        gone.expect(410);
        assert!(gone.message().contains("Terminated"), "{}", gone.message());
    })
    .await;
}

#[tokio::test]
async fn rewind_and_restart() {
    both(plain, |api, rt| async move {
        FLAKY_CALLS.store(0, Ordering::SeqCst);
        let id = api.start("flaky", None).await;
        done(&rt, &id).await;
        assert_eq!(
            api.get(&format!("instances/{id}")).await.body["runtimeStatus"],
            "Failed"
        );
        api.post(&format!("instances/{id}/rewind?reason=fixed"), None)
            .await
            .expect(202);
        rt.idle().await;
        let status = rt.client().wait_for_completion(&id, WAIT).await.unwrap();
        assert_eq!(status.output::<String>().unwrap(), "second time lucky");
        let gone = api.post(&format!("instances/{id}/rewind"), None).await;
        gone.expect(410);
        assert!(gone.message().contains("Completed"), "{}", gone.message());
        let waiting = api.start("approval", Some(r#""d""#)).await;
        rt.client().wait_for_start(&waiting, WAIT).await.unwrap();
        api.post(&format!("instances/{waiting}/rewind"), None)
            .await
            .expect(412);
        api.post("instances/nobody/rewind", None).await.expect(404);

        // Restart: a new id by default, the same id when asked.
        let id = api.start("hello", None).await;
        done(&rt, &id).await;
        let restarted = api.post(&format!("instances/{id}/restart"), None).await;
        restarted.expect(202);
        let new_id = restarted.body["id"].as_str().unwrap().to_string();
        assert_ne!(new_id, id);
        assert!(restarted.header("location").unwrap().contains(&new_id));
        done(&rt, &new_id).await;
        let same = api
            .post(
                &format!("instances/{id}/restart?restartWithNewInstanceId=false"),
                None,
            )
            .await;
        same.expect(202);
        assert_eq!(same.body["id"], id.as_str());
        api.post("instances/nobody/restart", None).await.expect(404);
    })
    .await;
}

#[tokio::test]
async fn purge_one_and_by_filter() {
    both(plain, |api, rt| async move {
        let id = api.start("hello", None).await;
        done(&rt, &id).await;
        let purged = api.delete(&format!("instances/{id}")).await;
        purged.expect(200);
        assert_eq!(purged.body, json!({"instancesDeleted": 1}));
        api.delete(&format!("instances/{id}")).await.expect(404);
        api.get(&format!("instances/{id}")).await.expect(404);
        let running = api.start("approval", Some(r#""e""#)).await;
        rt.client().wait_for_start(&running, WAIT).await.unwrap();
        let refused = api.delete(&format!("instances/{running}")).await;
        refused.expect(412);
        assert!(
            refused.message().contains("Running"),
            "{}",
            refused.message()
        );

        for _ in 0..3 {
            let id = api.start("hello", None).await;
            done(&rt, &id).await;
        }
        let needs_from = api.delete("instances").await;
        needs_from.expect(400);
        assert!(
            needs_from.message().contains("createdTimeFrom"),
            "{}",
            needs_from.message()
        );
        api.delete("instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Running")
            .await
            .expect(400);
        let purged = api
            .delete("instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed")
            .await;
        purged.expect(200);
        assert_eq!(purged.body, json!({"instancesDeleted": 3}));
        let none_left = api
            .delete("instances?createdTimeFrom=2000-01-01T00:00:00Z")
            .await;
        none_left.expect_code(404);
        assert_eq!(none_left.body, json!({"instancesDeleted": 0}));
        // The running instance was not touched.
        api.get(&format!("instances/{running}")).await.expect(202);
    })
    .await;
}

#[tokio::test]
async fn entities_signal_read_list_delete() {
    both(plain, |api, rt| async move {
        api.get("entities/counter/c1").await.expect(404);
        api.post("entities/Counter/c1?op=add", Some("5"))
            .await
            .expect(202);
        api.post("entities/counter/c1?op=Add", Some("2"))
            .await
            .expect(202);
        api.post("entities/counter/c2?op=add", Some("1"))
            .await
            .expect(202);
        rt.idle().await;
        let state = api.get("entities/counter/c1").await;
        state.expect(200);
        assert_eq!(state.body, json!({"value": 7}));

        let list = api.get("entities/counter?fetchState=true").await;
        list.expect(200);
        let items = list.body.as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0]["entityId"],
            json!({"name": "counter", "key": "c1"})
        );
        assert_eq!(items[0]["state"], json!({"value": 7}));
        assert!(items[0]["lastOperationTime"].is_string());
        api.get("entities/").await.expect(200);
        assert_eq!(
            api.get("entities/counter/")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let all = api.get("entities").await;
        assert_eq!(all.body.as_array().unwrap().len(), 2);
        assert!(
            all.body[0].get("state").is_none(),
            "state only with fetchState"
        );
        assert_eq!(api.get("entities/other").await.body, json!([]));

        let no_op = api.post("entities/counter/c1", Some("1")).await;
        no_op.expect(400);
        assert!(no_op.message().contains("?op="), "{}", no_op.message());
        let unknown = api.post("entities/nope/k?op=add", Some("1")).await;
        unknown.expect(400);
        assert!(unknown.message().contains("nope"), "{}", unknown.message());
        api.post("entities/counter/c1?op=add", Some("[1,"))
            .await
            .expect(400);
        // A continuation token the host did not issue is the caller's mistake on every listing.
        for listing in ["entities", "entities/counter"] {
            let forged = api
                .call(
                    "GET",
                    listing,
                    None,
                    &[("x-ms-continuation-token", "forged")],
                )
                .await;
            forged.expect(400);
            assert!(
                forged.message().contains("continuation"),
                "{}",
                forged.message()
            );
        }

        api.delete("entities/counter/c2").await.expect(202);
        rt.idle().await;
        api.get("entities/counter/c2").await.expect(404);
    })
    .await;
}

#[tokio::test]
async fn a_key_guards_every_endpoint() {
    both(
        |o| o.key("s3cret"),
        |api, _rt| async move {
            let refused = api.get("instances").await;
            refused.expect(401);
            assert!(refused.message().contains("code="), "{}", refused.message());
            api.get("instances?code=wrong").await.expect(401);
            api.get("instances?code=s3cret").await.expect(200);
            api.call("GET", "instances", None, &[("x-functions-key", "s3cret")])
                .await
                .expect(200);
            let started = api.post("orchestrators/hello?code=s3cret", None).await;
            started.expect(202);
            let link = started.body["statusQueryGetUri"].as_str().unwrap();
            assert!(link.contains("code=s3cret"), "{link}");
        },
    )
    .await;
}

#[tokio::test]
async fn unknown_endpoints_and_methods_answer_in_json() {
    both(plain, |api, rt| async move {
        let missing = api.get("/api/orchestrators/hello").await;
        missing.expect(404);
        assert!(missing.message().contains(BASE), "{}", missing.message());
        api.get("orchestrators/hello").await.expect(405);
        let no_such = api.post("instances/x/explode", None).await;
        no_such.expect(404);
        assert!(
            no_such.message().contains("explode"),
            "{}",
            no_such.message()
        );
        // Operation names are case-insensitive, as in Durable Functions.
        let id = api.start("approval", Some(r#""z""#)).await;
        rt.client().wait_for_start(&id, WAIT).await.unwrap();
        api.post(&format!("instances/{id}/TERMINATE"), None)
            .await
            .expect(202);
        api.call("PUT", "instances/x", None, &[]).await.expect(405);
    })
    .await;
}

#[tokio::test]
async fn start_and_restart_can_wait_for_the_outcome() {
    both(plain, |api, _rt| async move {
        let done = api
            .post("orchestrators/hello/w-1?timeout=10&pollingInterval=1", None)
            .await;
        done.expect(200);
        assert_eq!(done.body, json!(["Hello Tokyo!", "Hello London!"]));
        assert!(done.header("location").is_none());
        // Still running when the wait ends: the usual 202 with the links.
        let waiting = api
            .post("orchestrators/approval?timeout=0", Some(r#""w""#))
            .await;
        waiting.expect(202);
        assert!(waiting.body["statusQueryGetUri"].is_string());
        assert!(waiting.header("location").is_some());
        // A failure answers with the status, 500 when asked.
        let failed = api.post("orchestrators/broken?timeout=10", None).await;
        failed.expect_code(200);
        assert_eq!(failed.body["runtimeStatus"], "Failed");
        api.post(
            "orchestrators/broken?timeout=10&returnInternalServerErrorOnFailure=true",
            None,
        )
        .await
        .expect_code(500);
        let restarted = api
            .post(
                "instances/w-1/restart?restartWithNewInstanceId=false&timeout=10",
                None,
            )
            .await;
        restarted.expect(200);
        assert_eq!(restarted.body, json!(["Hello Tokyo!", "Hello London!"]));

        let bad = api.post("orchestrators/hello?timeout=soon", None).await;
        bad.expect(400);
        assert!(bad.message().contains("timeout=soon"), "{}", bad.message());
        api.post("orchestrators/hello?timeout=1&pollingInterval=5", None)
            .await
            .expect(400);
    })
    .await;
}

/// Sends raw bytes to the host and reads the answer to the end (the requests ask the server to
/// close): the status and the body, parsed as JSON.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, parse(body.as_bytes()))
}

#[track_caller]
fn assert_json_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "body: {body}");
    let error: api::ErrorBody = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("error body is not JSON {{error, message}}: {e}: {body}"));
    assert!(
        !error.error.is_empty() && !error.message.is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn bad_paths_and_entity_ids_on_instance_routes_answer_400_in_json() {
    both(plain, |api, _rt| async move {
        // Percent-escapes that do not decode to UTF-8 in a path segment.
        let bad = api.get("instances/%FF%FE").await;
        bad.expect(400);
        assert!(bad.message().contains("UTF-8"), "{}", bad.message());
        api.get("entities/%C3%28/k").await.expect(400);
        // Entity ids on every instance route point at the entity endpoints.
        for (method, path) in [
            ("GET", "instances/@counter@k"),
            ("DELETE", "instances/@counter@k"),
            ("POST", "instances/@counter@k/terminate"),
            ("POST", "instances/@counter@k/suspend"),
            ("POST", "instances/@counter@k/resume"),
            ("POST", "instances/@counter@k/rewind"),
            ("POST", "instances/@counter@k/restart"),
            ("POST", "instances/@counter@k/raiseEvent/x"),
        ] {
            let reply = api.call(method, path, None, &[]).await;
            reply.expect(400);
            assert!(
                reply.message().contains("entities/{name}/{key}"),
                "{method} {path}: {}",
                reply.message()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn query_values_and_names_that_are_not_utf8_answer_400_naming_them() {
    both(
        |o| o.key("s3cret"),
        |api, rt| async move {
            let id = api.start("approval?code=s3cret", Some("\"ann\"")).await;
            // A form decoder would store U+FFFD as the reason; the request is refused instead,
            // and the instance is left running.
            let refused = api
                .post(
                    &format!("instances/{id}/terminate?code=s3cret&reason=%FF"),
                    None,
                )
                .await;
            refused.expect(400);
            assert!(
                refused.message().contains("`reason`"),
                "{}",
                refused.message()
            );
            assert!(refused.message().contains("UTF-8"), "{}", refused.message());
            let status = rt.client().status(&id).await.unwrap().unwrap();
            assert_ne!(status.runtime_status, RuntimeStatus::Terminated);
            for (method, path, named) in [
                (
                    "GET",
                    "instances?code=s3cret&runtimeStatus=Running%C3%28",
                    "`runtimeStatus`",
                ),
                (
                    "GET",
                    "instances?code=s3cret&instanceIdPrefix=%80",
                    "`instanceIdPrefix`",
                ),
                ("POST", "entities/counter/k?code=s3cret&op=add%FE", "`op`"),
                (
                    "POST",
                    "orchestrators/echo?code=s3cret&%FF=1",
                    "name of the query parameter",
                ),
                (
                    "DELETE",
                    "instances?code=s3cret&createdTimeFrom=%E2%82",
                    "`createdTimeFrom`",
                ),
                (
                    "GET",
                    "instances/x?code=s3cret&show+history=%ED%A0%80",
                    "`show history`",
                ),
                // Before the key is checked, too: a key that is not UTF-8 is no key.
                ("GET", "instances?code=%FF", "`code`"),
                ("GET", "nowhere?x=%FF", "`x`"),
            ] {
                let reply = api.call(method, path, None, &[]).await;
                reply.expect(400);
                assert!(
                    reply.message().contains(named),
                    "{method} {path}: {}",
                    reply.message()
                );
            }
            // Well-formed UTF-8 passes.
            api.get("instances?code=s3cret&instanceIdPrefix=caf%C3%A9")
                .await
                .expect(200);
        },
    )
    .await;
}

#[tokio::test]
async fn hyper_level_errors_and_ambiguous_framing_answer_in_json() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let rt = TestRuntime::start(builder().http_options(HttpOptions::new(loopback)))
        .await
        .unwrap();
    let addr = rt.http_addr().unwrap();
    let close = "Host: x\r\nConnection: close\r\n";
    // Both Content-Length and Transfer-Encoding: hyper alone would take the chunked body.
    let smuggle = format!(
        "POST {BASE}/orchestrators/echo HTTP/1.1\r\n{close}Content-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n4\r\n\"ab\"\r\n0\r\n\r\n"
    );
    let (status, body) = raw(addr, smuggle.as_bytes()).await;
    assert_json_error(status, &body, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Transfer-Encoding")
    );
    // Headers too large, a URI too long, a malformed header, a bad request line.
    let big = format!(
        "GET {BASE}/instances HTTP/1.1\r\n{close}x-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, body) = raw(addr, big.as_bytes()).await;
    assert_json_error(status, &body, 431);
    let long = format!(
        "GET {BASE}/instances/{} HTTP/1.1\r\n{close}\r\n",
        "a".repeat(20_000)
    );
    let (status, body) = raw(addr, long.as_bytes()).await;
    assert_json_error(status, &body, 414);
    let malformed = format!("GET {BASE}/instances HTTP/1.1\r\n{close}bad header\r\n\r\n");
    let (status, body) = raw(addr, malformed.as_bytes()).await;
    assert_json_error(status, &body, 400);
    let (status, body) = raw(addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_json_error(status, &body, 400);
    // Invalid UTF-8 in a path segment, sent raw.
    let utf8 = format!("GET {BASE}/instances/%FF HTTP/1.1\r\n{close}\r\n");
    let (status, body) = raw(addr, utf8.as_bytes()).await;
    assert_json_error(status, &body, 400);
    // A good request after a pipelined one is answered; a bad one after it is refused in JSON
    // once the first is answered.
    let pipelined = format!(
        "GET {BASE}/instances HTTP/1.1\r\nHost: x\r\n\r\n\
         POST {BASE}/orchestrators/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let second = answer.rfind("HTTP/1.1 ").unwrap();
    assert!(answer[second..].starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with('}'), "{answer}");
    // The host still serves.
    let ok =
        format!("POST {BASE}/orchestrators/echo HTTP/1.1\r\n{close}Content-Length: 2\r\n\r\n42");
    let (status, body) = raw(addr, ok.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    rt.shutdown().await;
}

#[tokio::test]
async fn slow_heads_get_408_and_idle_connections_are_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let loopback = "127.0.0.1:0".parse().unwrap();
    let options = HttpOptions::new(loopback)
        .head_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(300));
    let rt = TestRuntime::start(builder().http_options(options))
        .await
        .unwrap();
    let addr = rt.http_addr().unwrap();
    // Reads until the server closes (a reset after its answer keeps what was read).
    let read_all = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let read = async {
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the server closes the connection");
        String::from_utf8_lossy(&answer).into_owned()
    };
    // A head trickled a byte at a time, never finished: the time counts from its first byte,
    // however often bytes arrive.
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {BASE}/instances HTTP/1.1\r\nHost: x\r\nx-slow: ");
    for byte in head.bytes().chain(std::iter::repeat(b'a')) {
        assert!(started.elapsed() < WAIT, "a trickled head is answered");
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut peek = [0u8; 1];
        let answered =
            tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut peek)).await;
        if answered.is_ok() {
            break;
        }
    }
    let answer = read_all(stream).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_json_error(408, &parse(body.as_bytes()), 408);
    assert!(body.contains("200 ms"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that sends nothing is closed without an answer.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_all(stream).await, "");
    // So is a kept-alive connection once its request is answered, and it is idle.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let get = format!("GET {BASE}/instances HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let answer = read_all(stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    // A request answered slowly (waiting longer than the idle timeout for its instance) is not
    // idle: its answer arrives.
    let wait = format!(
        "POST {BASE}/orchestrators/approval?timeout=1 HTTP/1.1\r\nHost: x\r\n\
         Content-Length: 5\r\n\r\n\"ann\""
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(wait.as_bytes()).await.unwrap();
    let answer = read_all(stream).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    // The host still serves.
    let ok = format!(
        "POST {BASE}/orchestrators/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: 2\r\n\r\n42"
    );
    let (status, body) = raw(addr, ok.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    rt.shutdown().await;
}

/// A writer into a shared buffer, for reading what was logged.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Logs into this buffer on the current thread (the test's runtime is single-threaded).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

#[tokio::test]
async fn store_failures_answer_without_internals_and_are_logged_once() {
    use durable_tests::hooked::HookedStore;
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let secret = "unable to open database file: /var/lib/secret/durable.db\nINFO forged line";
    let store = HookedStore::new(durable::store::Memory::new(), Arc::new(|_, _| Ok(())))
        .failing_reads(secret);
    let rt = TestRuntime::start(builder().store(store)).await.unwrap();
    let router = durable::http::router(rt.client(), Arc::new(HttpOptions::default()));
    let api = Api {
        transport: Transport::InProcess(router),
        host: "localhost:7071".to_string(),
    };
    let failed = api.get("instances/some-id").await;
    failed.expect(500);
    assert_eq!(failed.body["error"], "Store");
    assert_eq!(failed.message(), "the store failed; see the host's log");
    assert!(
        !failed.body.to_string().contains("/var/lib"),
        "{}",
        failed.body
    );
    api.get("instances").await.expect(500);
    let text = logs.text();
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("/var/lib/secret"))
        .collect();
    assert_eq!(logged.len(), 2, "once per failed request: {text}");
    assert!(logged.iter().all(|l| l.contains("ERROR")), "{text}");
    // The newline in the message is escaped: no forged line.
    assert!(
        !text.lines().any(|l| l.starts_with("INFO forged")),
        "{text}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn names_and_ids_with_newlines_stay_on_one_log_line() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let rt = TestRuntime::start(builder()).await.unwrap();
    let router = durable::http::router(rt.client(), Arc::new(HttpOptions::default()));
    let api = Api {
        transport: Transport::InProcess(router),
        host: "localhost:7071".to_string(),
    };
    // An operation the entity does not have fails, and the failure is logged with its name.
    api.post(
        "entities/counter/k%0aWARN%20forged?op=nope%0aWARN%20forged",
        None,
    )
    .await
    .expect(202);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !logs.text().contains("entity operation failed") {
        assert!(tokio::time::Instant::now() < deadline, "{}", logs.text());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let text = logs.text();
    assert!(
        !text.lines().any(|l| l.starts_with("WARN forged")),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("entity operation failed"))
        .unwrap();
    // Operation names are matched case-insensitively, so it is logged lower-cased.
    assert!(line.contains(r"nope\nwarn forged"), "{line}");
    assert!(line.contains(r"@counter@k\nWARN forged"), "{line}");
    rt.shutdown().await;
}
