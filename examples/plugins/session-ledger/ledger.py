#!/usr/bin/env python3
"""Homarus example plugin: a ledger of session starts and ends.

The gateway runs this program with the plugin folder as working directory and talks JSON-RPC 2.0
over stdin/stdout, one JSON object per line:

  -> {"jsonrpc":"2.0","id":1,"method":"initialize","params":{"gatewayVersion":..,"pluginId":..,"config":{..},"hooks":[..]}}
  <- {"jsonrpc":"2.0","id":1,"result":{"ok":true}}
  -> {"jsonrpc":"2.0","id":2,"method":"hook","params":{"name":"session_end","event":{..},"ctx":{..}}}
  <- {"jsonrpc":"2.0","id":2,"result":null}          (observation hooks: no decision)
  -> {"jsonrpc":"2.0","id":3,"method":"shutdown","params":{}}
  <- {"jsonrpc":"2.0","id":3,"result":{"ok":true}}   (then stdin closes; exit)

Logs go to stderr (the gateway copies them to its log). Nothing but JSON-RPC goes to stdout.
"""
import json
import sqlite3
import sys
import time

db = None


def reply(req_id, result=None, error=None):
    msg = {"jsonrpc": "2.0", "id": req_id}
    if error is not None:
        msg["error"] = {"code": -32000, "message": error}
    else:
        msg["result"] = result
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def initialize(params):
    global db
    path = (params.get("config") or {}).get("db", "ledger.sqlite")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        """CREATE TABLE IF NOT EXISTS events (
               id INTEGER PRIMARY KEY,
               hook TEXT NOT NULL,
               session_id TEXT NOT NULL,
               session_key TEXT,
               reason TEXT,
               resumed_from TEXT,
               message_count INTEGER,
               at_ms INTEGER NOT NULL)"""
    )
    db.commit()
    print(f"session-ledger: recording to {path}", file=sys.stderr, flush=True)
    return {"ok": True}


def hook(params):
    name, event = params.get("name"), params.get("event") or {}
    if name in ("session_start", "session_end"):
        db.execute(
            "INSERT INTO events (hook, session_id, session_key, reason, resumed_from, message_count, at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                event.get("sessionId", ""),
                event.get("sessionKey"),
                event.get("reason"),
                event.get("resumedFrom"),
                event.get("messageCount"),
                int(time.time() * 1000),
            ),
        )
        db.commit()
    return None


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"session-ledger: bad line: {e}", file=sys.stderr, flush=True)
            continue
        method, req_id, params = req.get("method"), req.get("id"), req.get("params") or {}
        try:
            if method == "initialize":
                reply(req_id, initialize(params))
            elif method == "hook":
                reply(req_id, hook(params))
            elif method == "shutdown":
                reply(req_id, {"ok": True})
                break
            else:
                reply(req_id, error=f"unknown method {method}")
        except Exception as e:  # report, never die on one bad request
            reply(req_id, error=str(e))
    if db is not None:
        db.close()


if __name__ == "__main__":
    main()
