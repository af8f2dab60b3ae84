//! The HTTP management API, instances: every endpoint and status code, each test run twice —
//! in process and over a real loopback socket (see `support/http_api.rs`).

use std::sync::atomic::Ordering;

use durable::http::api;
use durable::prelude::*;
use durable_tests::WAIT;
use serde_json::{Value, json};

#[path = "support/http_api.rs"]
mod http_api;

use http_api::*;

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
async fn starts_take_a_version_shown_in_the_status_and_queried_by() {
    both(plain, |api, rt| async move {
        let versioned = api.post("orchestrators/echo?version=0.5", Some("1")).await;
        versioned.expect(202);
        let versioned = versioned.body["id"].as_str().unwrap().to_string();
        let plain_id = api.start("echo", Some("2")).await;
        done(&rt, &plain_id).await;
        // This host has no version: it leaves an instance of version 0.5 (newer than none).
        let status = api.get(&format!("instances/{versioned}")).await;
        status.expect(202);
        assert_eq!(status.body["version"], "0.5", "{}", status.body);
        assert_eq!(status.body["runtimeStatus"], "Pending");
        let status = api.get(&format!("instances/{plain_id}")).await;
        status.expect(200);
        assert!(
            status.body.get("version").is_none(),
            "no version, no field: {}",
            status.body
        );
        let listed = api.get("instances?version=0.5").await;
        listed.expect(200);
        let ids: Vec<&str> = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["instanceId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [versioned.as_str()]);
        let bad = api
            .post("orchestrators/echo?version=%201.0", Some("1"))
            .await;
        bad.expect(400);
        assert!(
            bad.message().contains("`version`") && bad.message().contains("white space"),
            "{}",
            bad.message()
        );
        let too_long = "9".repeat(101);
        let bad = api
            .post(&format!("orchestrators/echo?version={too_long}"), Some("1"))
            .await;
        bad.expect(400);
        assert!(
            bad.message().contains("longer than 100"),
            "{}",
            bad.message()
        );
    })
    .await;
}
