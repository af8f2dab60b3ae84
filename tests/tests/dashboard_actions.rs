//! The dashboard's actions — what each does and answers — and its key rule: the sign-in
//! form, the cookie, `?code=`, and the header every action must carry.
#[path = "support/http_api.rs"]
mod http_api;
#[path = "support/dashboard.rs"]
mod support;

use durable::http::HttpOptions;
use durable::prelude::*;
use durable_tests::WAIT;
use http_api::{approval, broken};
use serde_json::json;
use support::*;

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
