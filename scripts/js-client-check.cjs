// Drives a durable host with Durable Functions' own JavaScript client (`durable-functions` from
// npm): node js-client-check.cjs http://127.0.0.1:PORT [KEY]  (see scripts/js-client-check).
//
// Without a key the client talks to the host's API base URL, as an app in the Functions host
// does; with one it uses the URL templates the extension hands its clients, which carry
// `code=KEY`. Prints one line per check and exits non-zero when any fails.
"use strict";

const { DurableClient } = require("durable-functions/lib/src/durableClient/DurableClient");
const df = require("durable-functions");
const { HttpRequest } = require("@azure/functions");

const [BASE, KEY] = process.argv.slice(2);
const API = `${BASE}/runtime/webhooks/durabletask`;
const code = KEY ? `&code=${KEY}` : "";
const hub = "taskHub=default&connection=Storage";
const ID = "INSTANCEID";
const instance = `${API}/instances/${ID}`;
const managementUrls = {
    id: ID,
    statusQueryGetUri: `${instance}?${hub}${code}`,
    sendEventPostUri: `${instance}/raiseEvent/{eventName}?${hub}${code}`,
    terminatePostUri: `${instance}/terminate?reason={text}&${hub}${code}`,
    rewindPostUri: `${instance}/rewind?reason={text}&${hub}${code}`,
    purgeHistoryDeleteUri: `${instance}?${hub}${code}`,
    restartPostUri: `${instance}/restart?${hub}${code}`,
    suspendPostUri: `${instance}/suspend?reason={text}&${hub}${code}`,
    resumePostUri: `${instance}/resume?reason={text}&${hub}${code}`,
};
const clientData = {
    taskHubName: "default",
    creationUrls: {
        createNewInstancePostUri: `${API}/orchestrators/{functionName}[/{instanceId}]?${hub}${code}`,
        createAndWaitOnNewInstancePostUri: `${API}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&${hub}${code}`,
    },
    managementUrls,
    baseUrl: API,
    requiredQueryStringParameters: KEY ? `code=${KEY}` : "",
    // The extension's newer clients talk to one RPC base URL; that path carries no key.
    rpcBaseUrl: KEY ? undefined : `${API}/`,
};
const client = new DurableClient(clientData);
const S = df.OrchestrationRuntimeStatus;

const checks = [];
const ok = (name, good, detail) => checks.push([name, Boolean(good), detail]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(id, done, what) {
    let st;
    for (let i = 0; i < 600; i++) {
        st = await client.getStatus(id);
        if (done(st)) return st;
        await sleep(50);
    }
    throw new Error(`${id} never ${what}: ${st && st.runtimeStatus}`);
}

async function check(name, body) {
    try {
        await body();
    } catch (e) {
        ok(name, false, e.stack || String(e));
    }
}

async function main() {
    const mode = KEY ? "with a key" : "without a key";
    let hello;
    await check("startNew without input + getStatus (Completed, output)", async () => {
        hello = await client.startNew("hello_cities");
        const st = await until(hello, (s) => s.runtimeStatus === S.Completed, "completed");
        ok("startNew without input + getStatus (Completed, output)",
            JSON.stringify(st.output) === JSON.stringify(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]), st.output);
    });
    await check("getStatus with history", async () => {
        const st = await client.getStatus(hello, { showHistory: true, showHistoryOutput: true, showInput: true });
        const history = st.history || [];
        ok("getStatus with history", history.length > 0 && history[0].EventType === "ExecutionStarted",
            JSON.stringify(history.slice(0, 1)));
    });
    let approval;
    await check("startNew with an id and input, raiseEvent", async () => {
        approval = await client.startNew("approval_workflow", { instanceId: `js-approval-${KEY ? "k" : "n"}`, input: 3600 });
        await until(approval, (s) => s.runtimeStatus === S.Running, "ran");
        await client.raiseEvent(approval, "ApprovalEvent", true);
        const st = await until(approval, (s) => s.runtimeStatus === S.Completed, "completed");
        ok("startNew with an id and input, raiseEvent", st.output === "approved" && st.input === 3600, st);
    });
    await check("createCheckStatusResponse links", async () => {
        const request = new HttpRequest({ url: `${BASE}/api/start`, method: "POST" });
        const response = client.createCheckStatusResponse(request, approval);
        const body = await response.json();
        const status = await fetch(body.statusQueryGetUri);
        ok("createCheckStatusResponse links", response.status === 202 && status.status === 200
            && (await status.json()).instanceId === approval, body.statusQueryGetUri);
    });
    await check("waitForCompletionOrCreateCheckStatusResponse", async () => {
        const id = await client.startNew("hello_cities");
        const request = new HttpRequest({ url: `${BASE}/api/start`, method: "POST" });
        const response = await client.waitForCompletionOrCreateCheckStatusResponse(request, id,
            { timeoutInMilliseconds: 10000, retryIntervalInMilliseconds: 100 });
        const body = await response.json();
        ok("waitForCompletionOrCreateCheckStatusResponse", response.status === 200 && body[0] === "Hello Tokyo!",
            `${response.status} ${JSON.stringify(body)}`);
    });
    await check("suspend, resume, terminate", async () => {
        const id = await client.startNew("approval_workflow", { input: 3600 });
        await until(id, (s) => s.runtimeStatus === S.Running, "ran");
        await client.suspend(id, "pause");
        await until(id, (s) => s.runtimeStatus === S.Suspended, "suspended");
        await client.resume(id, "go");
        await until(id, (s) => s.runtimeStatus === S.Running, "resumed");
        await client.terminate(id, "no longer needed");
        const st = await until(id, (s) => s.runtimeStatus === S.Terminated, "terminated");
        ok("suspend, resume, terminate", st.output === "no longer needed", st.output);
    });
    await check("restart through the management payload", async () => {
        const payload = client.createHttpManagementPayload(hello);
        const response = await fetch(payload.restartPostUri, { method: "POST" });
        const body = await response.json();
        const st = await until(body.id, (s) => s.runtimeStatus === S.Completed, "completed");
        ok("restart through the management payload", response.status === 202 && body.id !== hello
            && st.output[0] === "Hello Tokyo!", body);
    });
    await check("rewind a failed instance", async () => {
        const id = await client.startNew("charge_with_retry", { input: 1250 });
        await until(id, (s) => s.runtimeStatus === S.Failed, "failed");
        await client.rewind(id, "try again");
        // Its activity fails by design, so the rewound instance runs it again and fails again;
        // the history shows the rewind.
        let events = [];
        let st;
        for (let i = 0; i < 600; i++) {
            st = await client.getStatus(id, { showHistory: true });
            events = (st.history || []).map((e) => e.EventType);
            if (st.runtimeStatus === S.Failed && events.includes("ExecutionRewound")) break;
            await sleep(50);
        }
        ok("rewind a failed instance", st.runtimeStatus === S.Failed && events.includes("ExecutionRewound"),
            JSON.stringify(events));
    });
    await check("getStatusAll and getStatusBy", async () => {
        const all = await client.getStatusAll();
        const completed = await client.getStatusBy({ runtimeStatus: [S.Completed] });
        ok("getStatusAll and getStatusBy", all.length >= 5 && completed.length >= 3
            && completed.every((s) => s.runtimeStatus === "Completed"), `${all.length} ${completed.length}`);
    });
    await check("purgeInstanceHistory and purgeInstanceHistoryBy", async () => {
        const one = await client.purgeInstanceHistory(approval);
        const some = await client.purgeInstanceHistoryBy({ createdTimeFrom: new Date(2000, 0, 1), runtimeStatus: [S.Terminated] });
        ok("purgeInstanceHistory and purgeInstanceHistoryBy", one.instancesDeleted === 1 && some.instancesDeleted >= 1,
            `${JSON.stringify(one)} ${JSON.stringify(some)}`);
    });
    await check("getStatus of an unknown instance is an error", async () => {
        try {
            await client.getStatus("no-such-instance");
            ok("getStatus of an unknown instance is an error", false, "no error");
        } catch (e) {
            ok("getStatus of an unknown instance is an error", String(e).includes("404"), String(e));
        }
    });
    await check("signalEntity and readEntityState", async () => {
        const entity = new df.EntityId("Counter", `js-${KEY ? "k" : "n"}`);
        await client.signalEntity(entity, "add", 5);
        await client.signalEntity(entity, "add", 2);
        let state;
        for (let i = 0; i < 200; i++) {
            const read = await client.readEntityState(entity);
            if (read.entityExists && read.entityState === 7) {
                state = read.entityState;
                break;
            }
            await sleep(50);
        }
        ok("signalEntity and readEntityState", state === 7, state);
    });
    let failed = 0;
    for (const [name, good, detail] of checks) {
        console.log(`${good ? "ok  " : "FAIL"} ${name} (${mode})${good ? "" : `  (${detail})`}`);
        if (!good) failed++;
    }
    console.log(`${checks.length - failed} passed, ${failed} failed (${mode})`);
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
