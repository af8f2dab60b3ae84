"""Drives a durable host with Durable Functions' own Python client (azure-functions-durable).

Usage: python-client-check.py http://127.0.0.1:PORT  (see scripts/python-client-check).
Prints one line per check and exits non-zero when any fails.
"""
import asyncio, json, sys
from azure.durable_functions import DurableOrchestrationClient, EntityId
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus as S
from datetime import datetime, timedelta

BASE = sys.argv[1]  # http://127.0.0.1:PORT
ctx = json.dumps({
    "taskHubName": "default",
    "creationUrls": {}, "managementUrls": {},
    "rpcBaseUrl": f"{BASE}/runtime/webhooks/durabletask/",
})
client = DurableOrchestrationClient(ctx)

async def until(id, done, what):
    for _ in range(200):
        st = await client.get_status(id)
        if done(st):
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"{id} never {what}: {st.runtime_status}")

async def main():
    checks = []
    def ok(name, cond, detail=""):
        checks.append((name, bool(cond), detail))
    id = await client.start_new("hello_cities", None, None)
    st = await until(id, lambda s: s.runtime_status == S.Completed, "completed")
    ok("start_new + get_status (Completed, output)", st.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], st.output)
    st = await client.get_status(id, show_history=True, show_history_output=True)
    ok("get_status show_history", st.historyEvents and st.historyEvents[0]["EventType"] == "ExecutionStarted", st.historyEvents[:1] if st.historyEvents else None)
    # The client's own field (the extension sends only historyEvents, so its users see none).
    ok("get_status show_history: the client's history field", st.history and st.history[0]["EventType"] == "ExecutionStarted", st.history[:1] if st.history else None)
    try:
        await client.start_new("no_such_orchestrator", None, None)
        ok("start_new of an unknown orchestrator raises with the host's message", False, "no error")
    except KeyError as e:
        ok("start_new of an unknown orchestrator raises with the host's message", False, f"KeyError {e}")
    except Exception as e:
        ok("start_new of an unknown orchestrator raises with the host's message", "no_such_orchestrator" in str(e), str(e))
    a = await client.start_new("approval_workflow", "py-approval-1", 3600)
    await until(a, lambda s: s.runtime_status == S.Running, "ran")
    ok("input sent double-encoded arrives as a number", (await client.get_status(a)).input_ == 3600, (await client.get_status(a)).input_)
    await client.raise_event(a, "ApprovalEvent", True)
    st = await until(a, lambda s: s.runtime_status == S.Completed, "completed")
    ok("raise_event (double-encoded bool) -> approved", st.output == "approved", st.output)
    try:
        await client.raise_event(a, "ApprovalEvent", True)
        ok("raise_event on finished instance raises (410)", False)
    except Exception as e:
        ok("raise_event on finished instance raises (410)", "gone" in str(e).lower() or "410" in str(e), str(e))
    t = await client.start_new("approval_workflow", None, 3600)
    await until(t, lambda s: s.runtime_status == S.Running, "ran")
    await client.suspend(t, "pause")
    await until(t, lambda s: s.runtime_status == S.Suspended, "suspended")
    await client.resume(t, "go")
    await until(t, lambda s: s.runtime_status == S.Running, "resumed")
    ok("suspend / resume", True)
    await client.terminate(t, "no longer needed")
    st = await until(t, lambda s: s.runtime_status == S.Terminated, "terminated")
    ok("terminate (reason becomes output)", st.output == "no longer needed", st.output)
    r = await client.restart(id)
    # The client hands back the response body: the check-status payload, as the extension sends it.
    r = r["id"] if isinstance(r, dict) else r
    st = await until(r, lambda s: s.runtime_status == S.Completed, "completed")
    ok("restart (new id)", r != id and st.output[0] == "Hello Tokyo!", r)
    all_ = await client.get_status_all()
    ok("get_status_all", len(all_) >= 4, len(all_))
    done = await client.get_status_by(runtime_status=[S.Completed])
    ok("get_status_by runtime_status", all(s.runtime_status == S.Completed for s in done) and len(done) >= 3, len(done))
    res = await client.purge_instance_history(id)
    ok("purge_instance_history", res.instances_deleted == 1, res.instances_deleted)
    res = await client.purge_instance_history_by(created_time_from=datetime(2000, 1, 1), runtime_status=[S.Terminated])
    ok("purge_instance_history_by", res.instances_deleted >= 1, res.instances_deleted)
    missing = await client.get_status("no-such-instance")
    ok("get_status unknown -> not found", missing.runtime_status is None, missing.message if hasattr(missing, "message") else missing)
    ent = EntityId("Counter", "py")
    await client.signal_entity(ent, "add", 5)
    await client.signal_entity(ent, "add", 2)
    state = None
    for _ in range(100):
        resp = await client.read_entity_state(ent)
        if resp.entity_exists and resp.entity_state == 7:
            state = resp.entity_state
            break
        await asyncio.sleep(0.05)
    ok("signal_entity + read_entity_state", state == 7, state)
    failed = 0
    for name, good, detail in checks:
        print(("ok   " if good else "FAIL ") + name + ("" if good else f"  ({detail})"))
        failed += not good
    print(f"{len(checks) - failed}/{len(checks)} passed")
    sys.exit(1 if failed else 0)

asyncio.run(main())
