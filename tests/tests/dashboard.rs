//! The web dashboard (feature `dashboard`), page by page and action by action, called in
//! process through its router: what each view shows, that stored text is escaped, what each
//! action does and answers, the key rule, and the list on a store of 100,000 instances.
//!
//! The same views in a real browser: `examples/tests/dashboard_browser.rs`.

#[path = "support/http_api.rs"]
mod http_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use chrono::{TimeDelta, Utc};
use durable::http::HttpOptions;
use durable::prelude::*;
use durable::store::{Fetched, NewInstance, Store, TurnCommit};
use durable::testing::TestRuntime;
use durable::{FailureDetails, InstanceStatus};
use durable_tests::WAIT;
use http_api::{Counter, approval, broken, builder, echo, hello};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An answer: status, headers, body text.
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.status, 200, "body: {}", self.body);
        &self.body
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The dashboard of one client, in process.
struct Dash {
    router: axum::Router,
}

impl Dash {
    fn new(client: Client, options: HttpOptions) -> Dash {
        Dash {
            router: durable::http::dashboard::router(client, Arc::new(options)),
        }
    }

    async fn call(&self, method: &str, uri: &str, body: &str, headers: &[(&str, &str)]) -> Page {
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

    async fn get(&self, uri: &str) -> Page {
        self.call("GET", uri, "", &[]).await
    }

    /// An action as the page's script sends it.
    async fn act(&self, uri: &str, body: Value) -> Page {
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

async fn host() -> TestRuntime {
    TestRuntime::start(
        builder()
            .register(parent_flow)
            .register(hold_lock)
            .register(drifting)
            .register(step_n),
    )
    .await
    .unwrap()
}

fn dash(rt: &TestRuntime) -> Dash {
    Dash::new(rt.client(), HttpOptions::default())
}

#[orchestrator]
async fn parent_flow(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    ctx.call_sub_orchestrator(hello, ())
        .instance_id("child-of-parent")
        .await
}

#[orchestrator]
async fn hold_lock(ctx: OrchestrationContext, key: String) -> Result<(), Error> {
    let _guard = ctx.lock_entities([EntityId::of::<Counter>(key)]).await?;
    let _: bool = ctx.wait_for_event("Release").await?;
    Ok(())
}

/// Which input `drifting` passes to its first activity: flipping it between turns makes the
/// replayed code disagree with the history.
static DRIFT: AtomicBool = AtomicBool::new(false);

#[activity]
async fn step_n(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[orchestrator]
async fn drifting(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    let n = if DRIFT.load(Ordering::SeqCst) { 2 } else { 1 };
    ctx.call_activity(step_n, n).await?;
    let _: bool = ctx.wait_for_event("Go").await?;
    Ok(())
}

/// The rows of the instance table, by their `data-id`.
fn listed_ids(html: &str) -> Vec<String> {
    html.split("<tr data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_list_counts_filters_sorts_and_pages() {
    let rt = host().await;
    let client = rt.client();
    for id in ["h-1", "h-2", "h-3"] {
        client.start(hello, ()).instance_id(id).await.unwrap();
        rt.advance(Duration::from_secs(1)).await;
    }
    client
        .start(approval, "ann".into())
        .instance_id("a-1")
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);

    let page = d.get("/durable/").await;
    let html = page.ok();
    assert!(html.contains("<span class=\"n\">4</span> all"), "{html}");
    assert!(html.contains("<span class=\"n\">3</span> Completed"));
    assert!(html.contains("<span class=\"n\">1</span> Running"));
    assert_eq!(
        listed_ids(html),
        ["a-1", "h-3", "h-2", "h-1"],
        "newest first"
    );
    assert_eq!(
        page.header("content-security-policy")
            .map(|v| v.contains("script-src 'self'")),
        Some(true)
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    let oldest = d.get("/durable/?order=oldest").await;
    assert_eq!(listed_ids(oldest.ok()), ["h-1", "h-2", "h-3", "a-1"]);
    let running = d.get("/durable/?status=Running").await;
    assert_eq!(listed_ids(running.ok()), ["a-1"]);
    let by_prefix = d.get("/durable/?prefix=h-&order=oldest").await;
    assert_eq!(listed_ids(by_prefix.ok()), ["h-1", "h-2", "h-3"]);
    let by_name = d.get("/durable/?name=approval").await;
    assert_eq!(listed_ids(by_name.ok()), ["a-1"]);
    // Created from the second instance's time on (the clock started at the manual clock's
    // origin and moved one second between starts).
    let second = client.status("h-2").await.unwrap().unwrap().created_at;
    let from = second.format("%Y-%m-%dT%H:%M:%S").to_string();
    let by_time = d.get(&format!("/durable/?from={from}&order=oldest")).await;
    assert_eq!(listed_ids(by_time.ok()), ["h-2", "h-3", "a-1"]);

    // Pages of two, newest first, followed by their links.
    let first = d.get("/durable/?size=2").await;
    assert_eq!(listed_ids(first.ok()), ["a-1", "h-3"]);
    let next = first
        .body
        .split("id=\"next-page\"")
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .expect("a next-page link");
    let second_page = d.get(&next).await;
    assert_eq!(listed_ids(second_page.ok()), ["h-2", "h-1"]);
    assert!(
        !second_page.body.contains("id=\"next-page\""),
        "the last page"
    );

    // Filters that cannot be read are named, not a failure.
    let bad = d.get("/durable/?status=Sleeping&from=yesterday").await;
    let html = bad.ok();
    assert!(
        html.contains("`Sleeping` is not a runtime status"),
        "{html}"
    );
    assert!(html.contains("`yesterday` is not a time"));
    let bad_token = d.get("/durable/?page=garbage").await;
    assert!(bad_token.ok().contains("invalid continuation token"));
    rt.shutdown().await;
}

#[tokio::test]
async fn stored_text_is_escaped_everywhere() {
    let rt = host().await;
    let client = rt.client();
    let id = "<img src=x onerror=alert(1)>\"'&";
    client
        .start(echo, json!({"x": "</pre><script>alert(2)</script>"}))
        .instance_id(id)
        .await
        .unwrap();
    let waiting = client
        .start(approval, "<b>bold</b>".into())
        .instance_id("waiting")
        .await
        .unwrap();
    rt.idle().await;
    client
        .raise_event(&waiting, "<svg onload=alert(3)>", "<i>payload</i>")
        .await
        .unwrap();
    client
        .signal_entity_by_id(&EntityId::new("counter", "<k>"), "add", 1)
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);
    let encoded = "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%22%27%26";
    let pages = [
        d.get("/durable/").await,
        d.get(&format!("/durable/instances/{encoded}")).await,
        d.get("/durable/instances/waiting").await,
        d.get("/durable/entities").await,
        d.get("/durable/entities/counter/%3Ck%3E").await,
    ];
    for page in &pages {
        let html = page.ok();
        for raw in [
            "<img src=x",
            "<script>alert",
            "<svg onload",
            "<i>payload",
            "<b>bold",
            "<k>",
        ] {
            assert!(
                !html.contains(raw),
                "`{raw}` reached the page unescaped:\n{html}"
            );
        }
    }
    assert!(
        pages[1]
            .body
            .contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;")
    );
    assert!(pages[1].body.contains("&lt;/pre&gt;&lt;script&gt;"));
    rt.shutdown().await;
}

#[tokio::test]
async fn an_instance_shows_its_data_failure_timeline_and_family() {
    let rt = host().await;
    let client = rt.client();
    client
        .start(parent_flow, ())
        .instance_id("parent")
        .await
        .unwrap();
    client
        .start(broken, ())
        .instance_id("broken-1")
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);

    let parent = d.get("/durable/instances/parent").await;
    let html = parent.ok();
    assert!(html.contains("data-status=\"Completed\""), "{html}");
    assert!(
        html.contains("href=\"/durable/instances/child-of-parent\""),
        "a link to the child"
    );
    assert!(
        html.contains("data-kind=\"sub-orchestration\""),
        "the child on the timeline"
    );
    assert!(html.contains("Hello Tokyo!"), "the output");

    let child = d.get("/durable/instances/child-of-parent").await;
    let html = child.ok();
    assert!(
        html.contains("<dt>Parent</dt><dd><a class=\"id\" href=\"/durable/instances/parent\">")
    );
    assert_eq!(
        html.matches("data-kind=\"activity\"").count(),
        2,
        "one bar per activity"
    );
    assert!(
        html.contains("&quot;Tokyo&quot;"),
        "an activity's input, opened from its bar"
    );
    assert!(html.contains("&quot;Hello Tokyo!&quot;"), "and its result");
    // Finished: restart and purge are offered; terminate is not.
    assert!(html.contains("id=\"act-purge\"") && html.contains("id=\"act-restart\""));
    assert!(!html.contains("id=\"act-terminate\""));

    let failed = d.get("/durable/instances/broken-1").await;
    let html = failed.ok();
    assert!(html.contains("id=\"failure\""), "{html}");
    assert!(html.contains("broken on purpose"));
    assert!(
        html.contains("id=\"act-rewind\""),
        "a failed instance can be rewound"
    );

    let missing = d.get("/durable/instances/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("There is no instance `nope`"));
    assert_eq!(d.get("/durable/no/such/page").await.status, 404);
    rt.shutdown().await;
}

#[tokio::test]
async fn every_instance_action_does_what_it_says() {
    let rt = host().await;
    let client = rt.client();
    for id in ["raise-me", "stop-me", "pause-me"] {
        client
            .start(approval, "ann".into())
            .instance_id(id)
            .await
            .unwrap();
    }
    client
        .start(broken, ())
        .instance_id("failed-1")
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);
    let status = |id: &'static str| {
        let client = client.clone();
        async move { client.status(id).await.unwrap().unwrap().runtime_status }
    };

    let answer = d
        .act(
            "/durable/api/instances/raise-me/raise-event",
            json!({"name": "Approval", "body": "true"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["message"],
        "Raised event `Approval` on `raise-me`."
    );
    rt.idle().await;
    let done = client.wait_for_completion("raise-me", WAIT).await.unwrap();
    assert_eq!(done.output::<String>().unwrap(), "ann: approved");

    let answer = d
        .act("/durable/api/instances/pause-me/suspend", json!({}))
        .await;
    assert_eq!(answer.json()["ok"], true);
    rt.idle().await;
    assert_eq!(status("pause-me").await, RuntimeStatus::Suspended);
    let page = d.get("/durable/instances/pause-me").await;
    assert!(
        page.ok().contains("id=\"act-resume\""),
        "a suspended instance offers resume"
    );
    d.act(
        "/durable/api/instances/pause-me/resume",
        json!({"reason": "back"}),
    )
    .await;
    rt.idle().await;
    assert_eq!(status("pause-me").await, RuntimeStatus::Running);

    let answer = d
        .act(
            "/durable/api/instances/stop-me/terminate",
            json!({"reason": "enough"}),
        )
        .await;
    assert_eq!(answer.json()["message"], "Asked `stop-me` to terminate.");
    rt.idle().await;
    assert_eq!(status("stop-me").await, RuntimeStatus::Terminated);

    // Terminated now: refused with the reason, not a failure of the host.
    let again = d
        .act("/durable/api/instances/stop-me/terminate", json!({}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["ok"], false);
    assert!(
        again.json()["message"]
            .as_str()
            .unwrap()
            .contains("it is Terminated")
    );

    let rewind = d
        .act("/durable/api/instances/failed-1/rewind", json!({}))
        .await;
    assert_eq!(rewind.json()["message"], "Asked `failed-1` to rewind.");

    let restart = d
        .act("/durable/api/instances/stop-me/restart", json!({}))
        .await;
    assert_eq!(restart.json()["location"], "/durable/instances/stop-me");
    rt.idle().await;
    assert_eq!(status("stop-me").await, RuntimeStatus::Running);

    let purge = d
        .act("/durable/api/instances/raise-me/purge", json!({}))
        .await;
    assert_eq!(purge.json()["message"], "Purged `raise-me`.");
    assert_eq!(purge.json()["location"], "/durable/");
    assert!(client.status("raise-me").await.unwrap().is_none());
    let running = d
        .act("/durable/api/instances/pause-me/purge", json!({}))
        .await;
    assert_eq!(running.status, 409, "a running instance is not purged");

    // Mistakes are named.
    let no_json = d
        .act(
            "/durable/api/instances/pause-me/raise-event",
            json!({"name": "Approval", "body": "yes please"}),
        )
        .await;
    assert_eq!(no_json.status, 400);
    assert!(
        no_json.json()["message"]
            .as_str()
            .unwrap()
            .contains("event body is not JSON")
    );
    let no_name = d
        .act(
            "/durable/api/instances/pause-me/raise-event",
            json!({"body": "1"}),
        )
        .await;
    assert_eq!(no_name.json()["message"], "name the event to raise");
    let unknown = d
        .act("/durable/api/instances/pause-me/explode", json!({}))
        .await;
    assert_eq!(unknown.status, 404);
    let missing = d
        .act("/durable/api/instances/ghost/terminate", json!({}))
        .await;
    assert_eq!(missing.status, 404);
    // Without the dashboard's header, nothing happens.
    let forged = d
        .call(
            "POST",
            "/durable/api/instances/pause-me/terminate",
            "{}",
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(forged.status, 403);
    rt.idle().await;
    assert_eq!(status("pause-me").await, RuntimeStatus::Running);
    rt.shutdown().await;
}

#[tokio::test]
async fn entities_list_show_signal_delete_and_name_their_lock_holder() {
    let rt = host().await;
    let client = rt.client();
    let d = dash(&rt);
    let answer = d
        .act(
            "/durable/api/entities/counter/game%201/signal",
            json!({"operation": "add", "input": "5"}),
        )
        .await;
    assert_eq!(
        answer.json()["message"],
        "Signalled `add` to `@counter@game 1`."
    );
    client
        .signal_entity::<Counter>("other")
        .add(1)
        .await
        .unwrap();
    rt.idle().await;

    let list = d.get("/durable/entities").await;
    let html = list.ok();
    assert!(
        html.contains("href=\"/durable/entities/counter/game%201\""),
        "{html}"
    );
    assert!(
        html.contains("{&quot;value&quot;:5}"),
        "the state, in short"
    );
    let filtered = d.get("/durable/entities?name=counter&key=oth").await;
    let html = filtered.ok();
    assert!(
        html.contains("@counter@other") && !html.contains("game 1"),
        "{html}"
    );

    let page = d.get("/durable/entities/counter/game%201").await;
    let html = page.ok();
    assert!(
        html.contains("&quot;value&quot;: 5"),
        "pretty state: {html}"
    );
    assert!(html.contains("<dd id=\"lock\">nobody</dd>"));

    // A critical section holds the lock: the page names the holder, and since when.
    client
        .start(hold_lock, "game 1".into())
        .instance_id("holder")
        .await
        .unwrap();
    rt.idle().await;
    let page = d.get("/durable/entities/counter/game%201").await;
    let html = page.ok();
    assert!(
        html.contains(
            "<dd id=\"lock\"><a class=\"id\" href=\"/durable/instances/holder\">holder</a> since"
        ),
        "{html}"
    );
    let locked_only = d.get("/durable/entities?locked=1").await;
    let html = locked_only.ok();
    assert!(
        html.contains("game%201") && !html.contains("@counter@other"),
        "{html}"
    );
    client.raise_event("holder", "Release", true).await.unwrap();
    rt.idle().await;

    let deleted = d
        .act("/durable/api/entities/counter/game%201/delete", json!({}))
        .await;
    assert_eq!(deleted.json()["ok"], true);
    rt.idle().await;
    assert!(
        client
            .read_entity::<Counter>("game 1")
            .await
            .unwrap()
            .is_none()
    );
    let page = d.get("/durable/entities/counter/game%201").await;
    assert!(page.ok().contains("No state"));
    let unknown = d
        .act(
            "/durable/api/entities/nothing/x/signal",
            json!({"operation": "add"}),
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("no entity named `nothing`")
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn attention_gathers_nondeterminism_poison_stalls_and_long_locks() {
    let rt = TestRuntime::start(
        builder()
            .always_replay(true)
            .register(drifting)
            .register(step_n)
            .register(hold_lock),
    )
    .await
    .unwrap();
    let client = rt.client();
    DRIFT.store(false, Ordering::SeqCst);
    client
        .start(drifting, ())
        .instance_id("drifter")
        .await
        .unwrap();
    client
        .start(hold_lock, "held".into())
        .instance_id("locker")
        .await
        .unwrap();
    rt.idle().await;
    // The code changes under the waiting instance; the next turn replays and disagrees.
    DRIFT.store(true, Ordering::SeqCst);
    client.raise_event("drifter", "Go", true).await.unwrap();
    rt.idle().await;
    let failed = client.status("drifter").await.unwrap().unwrap();
    assert_eq!(failed.runtime_status, RuntimeStatus::Failed);
    // Two hours later, the lock is still held and the lock holder has not moved.
    rt.advance(Duration::from_secs(2 * 3600)).await;

    let d = dash(&rt);
    let page = d.get("/durable/attention?stuck=60&locked=10").await;
    let html = page.ok();
    let section = |id: &str| {
        html.split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .unwrap_or_default()
            .to_string()
    };
    let nondeterminism = section("nondeterminism");
    assert!(
        nondeterminism.contains("/durable/instances/drifter"),
        "{html}"
    );
    assert!(
        nondeterminism.contains("<td>0</td>"),
        "the step: {nondeterminism}"
    );
    assert!(
        nondeterminism.contains("tests/tests/dashboard.rs:"),
        "the call site: {nondeterminism}"
    );
    let stalled = section("stalled");
    assert!(stalled.contains("/durable/instances/locker"), "{stalled}");
    assert!(stalled.contains("2 h 0 min"), "{stalled}");
    let locks = section("locks");
    assert!(locks.contains("/durable/entities/counter/held"), "{locks}");
    assert!(locks.contains("/durable/instances/locker"), "{locks}");
    assert!(section("parked").contains("Nothing here"));

    // A higher threshold leaves them out.
    let calm = d.get("/durable/attention?stuck=600&locked=600").await;
    let html = calm.ok();
    assert!(
        !html
            .split("id=\"stalled\"")
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap()
            .contains("locker")
    );
    rt.shutdown().await;
}

fn new_instance(id: &str, created_at: chrono::DateTime<Utc>) -> NewInstance {
    NewInstance {
        instance_id: id.into(),
        name: "flow".into(),
        input: "null".into(),
        execution_id: format!("{id}-e1"),
        parent: None,
        created_at,
        start_at: None,
        replace_running: false,
    }
}

#[tokio::test]
async fn parked_messages_are_listed_with_their_error() {
    // No host: the store is driven by hand, as a host would after repeated failures.
    let store = Arc::new(durable::store::Memory::new());
    let now = Utc::now();
    store
        .create_instance(new_instance("poisoned", now))
        .await
        .unwrap();
    let Fetched::Item(item) = store
        .fetch_orchestration(now, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the start is fetched");
    };
    store
        .park_orchestration(&item, "the payload <b>cannot</b> be read", now)
        .await
        .unwrap();
    // And one failed by nondeterminism, with no call site in its message.
    store
        .create_instance(new_instance("diverged", now + TimeDelta::seconds(1)))
        .await
        .unwrap();
    let Fetched::Item(item) = store
        .fetch_orchestration(now + TimeDelta::seconds(2), Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the start is fetched");
    };
    let failed = InstanceStatus {
        runtime_status: RuntimeStatus::Failed,
        failure: Some(FailureDetails {
            error_type: "Nondeterminism".into(),
            message: "the history recorded a timer as step 3, but the code did not schedule it"
                .into(),
            cause: None,
        }),
        ..item.instance.clone()
    };
    store
        .commit_turn(
            &item,
            TurnCommit {
                consumed: item.messages.iter().map(|m| m.seq).collect(),
                history: durable::store::HistoryWrite::Append(Vec::new()),
                status: failed,
                activities: Vec::new(),
                messages: Vec::new(),
                new_instances: Vec::new(),
            },
        )
        .await
        .unwrap();
    let d = Dash::new(Client::new(store), HttpOptions::default());
    let page = d.get("/durable/attention").await;
    let html = page.ok();
    let parked = html.split("id=\"parked\"").nth(1).unwrap();
    assert!(parked.contains("/durable/instances/poisoned"), "{html}");
    assert!(parked.contains("the payload &lt;b&gt;cannot&lt;/b&gt; be read"));
    let nondeterminism = html.split("id=\"nondeterminism\"").nth(1).unwrap();
    assert!(nondeterminism.contains("/durable/instances/diverged"));
    assert!(
        nondeterminism.contains("<td>3</td><td><code>—</code></td>"),
        "{nondeterminism}"
    );
}

#[tokio::test]
async fn with_a_key_the_dashboard_asks_for_it_and_keeps_it_in_a_cookie() {
    let rt = host().await;
    rt.client()
        .start(approval, "ann".into())
        .instance_id("keyed")
        .await
        .unwrap();
    rt.idle().await;
    let d = Dash::new(rt.client(), HttpOptions::default().key("s3cret"));

    let anonymous = d.get("/durable/").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.body.contains("name=\"key\""), "a sign-in form");
    assert!(!anonymous.body.contains("keyed"), "no data without the key");
    assert_eq!(d.get("/durable/instances/keyed").await.status, 401);
    assert_eq!(d.get("/durable/?code=wrong").await.status, 401);
    // The style sheet and script are not secret.
    assert_eq!(d.get("/durable/assets/app.css").await.status, 200);

    // The key in the URL: kept in the cookie, dropped from the address.
    let with_code = d.get("/durable/instances/keyed?code=s3cret&x=1").await;
    assert_eq!(with_code.status, 303);
    assert_eq!(
        with_code.header("location"),
        Some("/durable/instances/keyed?x=1")
    );
    let cookie = with_code.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("durable_key=s3cret;"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let signed_in = [("cookie", "durable_key=s3cret")];
    let page = d
        .call("GET", "/durable/instances/keyed", "", &signed_in)
        .await;
    assert!(page.ok().contains("keyed"));
    // The API's header works too.
    let page = d
        .call("GET", "/durable/", "", &[("x-functions-key", "s3cret")])
        .await;
    assert_eq!(page.status, 200);

    // The sign-in form.
    let wrong = d
        .call(
            "POST",
            "/durable/login",
            "key=nope&next=%2Fdurable%2Fentities",
            &[],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That key is not the host"));
    let right = d
        .call(
            "POST",
            "/durable/login",
            "key=s3cret&next=%2Fdurable%2Fentities",
            &[],
        )
        .await;
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/durable/entities"));
    let away = d
        .call(
            "POST",
            "/durable/login",
            "key=s3cret&next=https%3A%2F%2Fevil.example%2F",
            &[],
        )
        .await;
    assert_eq!(
        away.header("location"),
        Some("/durable/"),
        "never to another site"
    );
    let out = d.call("POST", "/durable/logout", "", &[]).await;
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));

    // Actions need the key and the dashboard's header.
    let terminate = "/durable/api/instances/keyed/terminate";
    let header = ("x-durable-dashboard", "1");
    let no_key = d.call("POST", terminate, "{}", &[header]).await;
    assert_eq!(no_key.status, 401);
    let no_header = d.call("POST", terminate, "{}", &signed_in).await;
    assert_eq!(no_header.status, 403);
    rt.idle().await;
    assert_eq!(
        rt.client()
            .status("keyed")
            .await
            .unwrap()
            .unwrap()
            .runtime_status,
        RuntimeStatus::Running,
        "nothing happened"
    );
    let both = d
        .call("POST", terminate, "{}", &[header, signed_in[0]])
        .await;
    assert_eq!(both.status, 200, "{}", both.body);
    rt.idle().await;
    assert_eq!(
        rt.client()
            .status("keyed")
            .await
            .unwrap()
            .unwrap()
            .runtime_status,
        RuntimeStatus::Terminated
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn the_host_serves_the_dashboard_beside_the_api() {
    let rt = TestRuntime::start(builder().http("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = rt.http_addr().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = http
        .get(format!("http://{addr}/durable"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 308);
    let page = http
        .get(format!("http://{addr}/durable/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<h1>Instances</h1>"));
    let script = http
        .get(format!("http://{addr}/durable/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"].to_str().unwrap(),
        "text/javascript"
    );
    let api = http
        .get(format!(
            "http://{addr}/runtime/webhooks/durabletask/instances"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 200, "the API is still there");
    rt.shutdown().await;
}

/// 100,000 instances on SQLite: the list, its counts and a filtered page answer from the
/// store's index. The times are printed (run with `--nocapture`), not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_stays_quick_with_100_000_instances_on_sqlite() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        durable::store::Sqlite::open_with(
            dir.path().join("big.db"),
            durable::store::Durability::Normal,
        )
        .unwrap(),
    );
    let started = Instant::now();
    let base = Utc::now() - TimeDelta::days(1);
    let mut tasks = Vec::new();
    for worker in 0..8usize {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..N).step_by(8) {
                store
                    .create_instance(NewInstance {
                        name: if i % 10 == 0 { "rare" } else { "common" }.into(),
                        ..new_instance(
                            &format!("big-{i:06}"),
                            base + TimeDelta::milliseconds(i as i64),
                        )
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    println!("created {N} instances in {:?}", started.elapsed());
    let d = Dash::new(Client::new(store.clone()), HttpOptions::default());

    let timed = |what: &'static str, uri: &'static str| {
        let d = &d;
        async move {
            let t = Instant::now();
            let page = d.get(uri).await;
            println!("{what}: {:?}", t.elapsed());
            page
        }
    };
    let first = timed("first page with counts", "/durable/").await;
    let html = first.ok();
    assert!(html.contains(&format!("<span class=\"n\">{N}</span> all")));
    assert!(html.contains(&format!("<span class=\"n\">{N}</span> Pending")));
    let ids = listed_ids(html);
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[0], "big-099999", "newest first");
    let oldest = timed("oldest first", "/durable/?order=oldest").await;
    assert_eq!(listed_ids(oldest.ok())[0], "big-000000");
    let prefix = timed("id prefix", "/durable/?prefix=big-0500").await;
    let ids = listed_ids(prefix.ok());
    assert_eq!(ids.len(), 50);
    assert!(ids.iter().all(|id| id.starts_with("big-0500")), "{ids:?}");
    let name = timed("by name (read on from the store)", "/durable/?name=rare").await;
    let ids = listed_ids(name.ok());
    assert!(ids.len() >= 50, "a full page of `rare`");
    assert!(ids.iter().all(|id| id.ends_with('0')), "{ids:?}");
    let count = timed("a status with no instances", "/durable/?status=Running").await;
    assert!(listed_ids(count.ok()).is_empty());
    let t = Instant::now();
    let counts = store.count_by_status().await.unwrap();
    println!("count_by_status alone: {:?}", t.elapsed());
    assert_eq!(counts, vec![(RuntimeStatus::Pending, N as u64)]);
    let _ = WAIT;
}
