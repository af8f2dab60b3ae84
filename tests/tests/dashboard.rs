//! The web dashboard (feature `dashboard`), view by view, called in process through its
//! router: what each page shows, that stored text is escaped, and the list on a store of
//! 100,000 instances. Its actions and key: `dashboard_actions.rs`; what needs attention:
//! `dashboard_attention.rs`; the same views in a real browser:
//! `examples/tests/dashboard_browser.rs`.
#[path = "support/http_api.rs"]
mod http_api;
#[path = "support/dashboard.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use durable::http::HttpOptions;
use durable::prelude::*;
use durable::store::{NewInstance, Store};
use durable::testing::TestRuntime;
use durable_tests::WAIT;
use http_api::{Counter, approval, broken, builder, echo, hello};
use serde_json::json;
use support::*;

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
    client
        .start(echo, json!(1))
        .instance_id("orders/2026 #7?")
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);
    // Ids with slashes, spaces, `#` and `?` link to their own page.
    let list = d.get("/durable/").await;
    assert!(
        list.ok()
            .contains("href=\"/durable/instances/orders%2F2026%20%237%3F\"")
    );
    let odd = d.get("/durable/instances/orders%2F2026%20%237%3F").await;
    assert!(
        odd.ok()
            .contains("<h1 class=\"instance-id\">orders/2026 #7?</h1>")
    );
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
    let keyless = d.get("/durable/entities?key=oth").await;
    assert!(
        keyless
            .ok()
            .contains("A key prefix needs the entity's name too.")
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

#[tokio::test]
async fn the_list_filters_by_version_and_the_instance_page_shows_it() {
    let rt = host().await;
    let client = rt.client();
    client
        .start(approval, "ann".into())
        .instance_id("versioned")
        .version("0.5")
        .await
        .unwrap();
    client
        .start(approval, "bob".into())
        .instance_id("plain")
        .await
        .unwrap();
    rt.idle().await;
    let d = dash(&rt);
    let page = d.get("/durable/?version=0.5").await;
    let html = page.ok();
    assert_eq!(listed_ids(html), ["versioned"]);
    assert!(html.contains("id=\"f-version\" value=\"0.5\""), "{html}");
    let page = d.get("/durable/instances/versioned").await;
    assert!(
        page.ok()
            .contains("<dt>Version</dt><dd id=\"version\">0.5</dd>"),
        "{}",
        page.ok()
    );
    let page = d.get("/durable/instances/plain").await;
    assert!(
        !page.ok().contains("<dt>Version</dt>"),
        "no version, no line"
    );
}
