//! The HTTP management API: entities, the key, unknown endpoints and starts that wait for the
//! outcome, each test run in process and over a loopback socket.

use durable_tests::WAIT;
use serde_json::json;

#[path = "support/http_api.rs"]
mod http_api;

use http_api::*;

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
