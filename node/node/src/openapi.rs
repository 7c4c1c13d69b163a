//! The OpenAPI 3.1 description served at `/openapi.json`.

use serde_json::{Value, json};

fn op(summary: &str, params: Value, ok: Value) -> Value {
    json!({
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": ok,
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    })
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

fn query_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}})
}

fn json_ok(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {}}})
}

/// The document.
pub fn document() -> Value {
    let id = path_param("id", "job id (decimal)");
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Shoal node API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Content, jobs, results and operators of a Shoal node. See docs/api.md."},
        "paths": {
            "/api/v1/content": {"post": {
                "summary": "Upload content: raw bytes become one UnixFS file (unixfs-v1-2025); a body with Content-Type application/vnd.ipld.car is imported as a CAR (every block verified).",
                "requestBody": {"content": {"application/octet-stream": {}, "application/vnd.ipld.car": {}}},
                "responses": {"200": {"description": "the root CID", "content": {"application/json": {"schema": {"type": "object", "properties": {"cid": {"type": "string"}}}}}},
                              "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
            }},
            "/api/v1/content/{cid}": {"head": op("200 when the whole DAG is on this node, 404 when not (no body)", json!([path_param("cid", "CID")]), json!({"description": "held"})), "get": op("A file's bytes, or with format=car the whole DAG as a CAR v1",
                json!([path_param("cid", "CID"), query_param("format", "car for a CAR of the DAG")]),
                json!({"description": "bytes", "content": {"application/octet-stream": {}, "application/vnd.ipld.car": {}}}))},
            "/api/v1/jobs": {"get": op("Jobs, newest first",
                json!([query_param("state", "Posted, Drawing, Running, Revealing, Challengeable, DisputeDrawing, Disputed, DisputeRevealing, Verified, Failed, Expired"),
                       query_param("creator", "0x address"), query_param("limit", "page size (default 50, at most 500)"),
                       query_param("offset", "jobs to skip")]),
                json_ok("{total, offset, jobs}"))},
            "/api/v1/jobs/{id}": {"get": op("A job: on-chain state and parameters, spec, bids, deals, result, and this node's bid decision with its reason",
                json!([id.clone()]), json_ok("job detail"))},
            "/api/v1/jobs/{id}/events": {"get": op("The job's decoded chain events in order", json!([id.clone()]), json_ok("events"))},
            "/api/v1/jobs/{id}/results": {"get": op("The verified results folder as a CAR (409 until verified); file=PATH returns one file of it",
                json!([id.clone(), query_param("file", "a path inside the results folder, e.g. stdout")]),
                json!({"description": "CAR or file bytes; header x-shoal-result-cid", "content": {"application/vnd.ipld.car": {}}}))},
            "/api/v1/jobs/{id}/logs": {"get": op("This node's stdout, stderr and exit code of the job, once it has ended", json!([id]), json_ok("{stdout, stderr, exitCode}"))},
            "/api/v1/nodes": {"get": op("Registered operators with on-chain data and API URLs where known", json!([]), json_ok("operators"))},
            "/api/v1/peers": {"get": op("This node's libp2p peer id and listen addresses, and its connected peers with agent, ping RTT and gossipsub score (503 without the swarm)", json!([]), json_ok("{peerId, listen, peers}"))},
            "/api/v1/peers/{peer}/jobs/{id}": {"get": op("A job's live status as a peer knows it, asked over the /shoal/status/1.0.0 protocol; logs=true adds its logs once the job ended",
                json!([path_param("peer", "libp2p peer id"), id.clone(), query_param("logs", "true to include logs")]), json_ok("{job_id, found, state, executions, logs} (the wire format of /shoal/status/1.0.0, snake_case)"))},
            "/api/v1/shards/{id}": {"get": op("A sharded job (docs/sharding.md) and every batch: state, attempt, deadline, operators, verified root",
                json!([path_param("id", "sharded job id (decimal; the ShardMarket's own sequence)")]), json_ok("ShardJobView"))},
            "/api/v1/shards/{id}/result": {"get": op("The merged result folder of a Done sharded job, built from the verified batches' leaves documents (409 before Done)",
                json!([path_param("id", "sharded job id (decimal)")]), json_ok("{cid, shards, failedBatches}"))},
            "/api/v1/pins": {
                "get": op("The swarm's pinset (docs/pinning.md): every pin with its allocation, live pinned copies and summary", json!([query_param("removed", "true to list removed pins too")]), json_ok("[PinView]")),
                "post": {
                    "summary": "Pin a CID on the swarm with a replication factor: {cid, name?, replicationMin?, replicationMax?}; 202 with the pin and its allocation",
                    "requestBody": {"content": {"application/json": {}}},
                    "responses": {"202": json_ok("PinView"),
                                  "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
                }
            },
            "/api/v1/pins/{cid}": {
                "get": op("A pin and each node's status of it: pinned, pinning, error (with the message) or unpinned", json!([path_param("cid", "root CID")]), json_ok("PinStatusView")),
                "delete": op("Remove a pin from the swarm's pinset; nodes unpin it", json!([path_param("cid", "root CID")]), json_ok("PinView"))
            },
            "/api/v1/pinning/peers": {"get": op("The pinning swarm as this node sees it: live, leaving, last heartbeat, free bytes, pinned CIDs", json!([]), json_ok("[PinPeerView]"))},
            "/api/v1/node/leave": {
                "get": op("A graceful leave's progress", json!([]), json_ok("LeaveView")),
                "post": op("Start a graceful leave: this node's pins move to others, then it stops (202)", json!([]), json_ok("LeaveView"))
            },
            "/api/v1/status": {"get": op("This node: operator address, API URL, chain id, executors, synced block", json!([]), json_ok("status"))},
            "/api/v1/deployment": {"get": op("Chain id, RPC URL, contract addresses and deploy block", json!([]), json_ok("deployment"))},
            "/healthz": {"get": op("Liveness", json!([]), json_ok("ok"))},
            "/metrics": {"get": op("Prometheus metrics", json!([]), json!({"description": "text exposition", "content": {"text/plain": {}}}))},
            "/openapi.json": {"get": op("This document", json!([]), json_ok("OpenAPI"))},
            "/explorer": {"get": op("The web explorer", json!([]), json!({"description": "HTML", "content": {"text/html": {}}}))}
        },
        "components": {"schemas": {"Error": {"type": "object", "required": ["error", "hint"],
            "properties": {"error": {"type": "string", "description": "what was wrong"},
                           "hint": {"type": "string", "description": "what to do"}}}}}
    })
}
