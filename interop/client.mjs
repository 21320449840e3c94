// A chat client written from docs/protocol.md alone, on the official socket.io-client.
// Usage: node client.mjs <url> <token> <bad-token> [<ca-file>]
// With a CA file (PEM), an https:// URL is reached trusting that CA, and a first check shows
// that without it the server's certificate is refused.
// Prints one JSON line per check and exits 0 when every check passed.
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

const [url, token, badToken, caFile] = process.argv.slice(2);
// Passed on to the WebSocket's TLS connection (Node's tls.connect `ca` option).
const tls = caFile ? { ca: readFileSync(caFile) } : {};
const results = [];
const check = (name, ok, detail) => {
  results.push(ok);
  console.log(JSON.stringify({ check: name, ok, detail }));
};

function connect(auth, options = tls) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ["websocket"], auth, reconnection: false, timeout: 5000, ...options });
    socket.on("connect", () => resolve(socket));
    socket.on("connect_error", (err) => { socket.close(); reject(err); });
  });
}

if (caFile) {
  try {
    (await connect({ token }, {})).close();
    check("untrusted certificate refused", false, "connected without the CA");
  } catch (err) {
    // The transport error's description is the TLS error from Node.
    const reason = err.description?.message ?? "";
    check("untrusted certificate refused", /certificate/.test(reason), `${err.message}: ${reason}`);
  }
}

try {
  await connect({ token: badToken });
  check("bad token refused", false, "connected");
} catch (err) {
  check("bad token refused", err.message === "unauthorized", err.message);
}

const socket = await connect({ token, device: "node" });
const request = (event, arg) => socket.timeout(5000).emitWithAck(event, arg);

const joined = await request("room:join", { room: "interop" });
check("room:join", joined.ok === true && joined.room === "interop" && Array.isArray(joined.members), joined);

const live = new Promise((resolve) => socket.once("message:new", resolve));
const clientId = randomUUID();
const sent = await request("message:send", { room: "interop", client_id: clientId, body: "hello from node" });
check("message:send", sent.ok === true && sent.seq === 1 && sent.duplicate === false && typeof sent.id === "string", sent);
const message = await live;
check("message:new", message.body === "hello from node" && message.client_id === clientId && message.seq === 1, message);

const again = await request("message:send", { room: "interop", client_id: clientId, body: "hello from node" });
check("idempotent resend", again.ok === true && again.duplicate === true && again.seq === 1, again);

const bad = await request("message:send", { room: "interop", client_id: "nope", body: "x" });
check("invalid_payload", bad.ok === false && bad.error.code === "invalid_payload", bad);

const sync = await request("message:sync", { room: "interop", after_seq: 0 });
check("message:sync", sync.ok === true && sync.messages.length === 1 && sync.last_seq === 1 && sync.has_more === false, sync);

const read = await request("receipt:read", { room: "interop", up_to_seq: 5 });
check("receipt:read", read.ok === true && read.read_seq === 1 && read.updated === 1, read);

const presence = await request("presence:get", { users: ["nobody"] });
check("presence:get", presence.ok === true && presence.presence[0].online === false, presence);

socket.close();
process.exit(results.every(Boolean) ? 0 : 1);
