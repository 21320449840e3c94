// A chat server written from docs/protocol.md alone, on the official socket.io@4 and
// better-sqlite3. It exists so the Rust SDK is tested against a backend that shares no code
// with chat-server. See README.md for what it implements and what it leaves out.
//
// Usage: node server.mjs [--host 127.0.0.1] [--port 0] --db FILE --secret SECRET
//                        [--send-rate 20] [--typing-rate 5] [--request-rate 50]
//                        [--max-connections 16] [--no-watermarks]
// The secret may also come from CHAT_JWT_SECRET. Once listening it prints one JSON line on
// stdout, {"url":"http://HOST:PORT","port":PORT}; logs go to stderr.
//
// Every handler is synchronous (better-sqlite3 is), so one socket's requests are applied in
// the order they arrived and a room's message:new events leave in seq order without locks.

import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { Server } from "socket.io";

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    db: { type: "string" },
    secret: { type: "string" },
    "send-rate": { type: "string", default: "20" },
    "typing-rate": { type: "string", default: "5" },
    "request-rate": { type: "string", default: "50" },
    "max-connections": { type: "string", default: "16" },
    "no-watermarks": { type: "boolean", default: false },
  },
});

function fail(message) {
  console.error(`node-server: ${message}`);
  process.exit(2);
}

const secret = args.secret ?? process.env.CHAT_JWT_SECRET;
if (!secret) fail("--secret (or CHAT_JWT_SECRET) is required");
if (!args.db) fail("--db FILE is required");
const number = (name) => {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number`);
  return value;
};
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port must be 0-65535");
const SEND_RATE = number("send-rate");
const TYPING_RATE = number("typing-rate");
const REQUEST_RATE = number("request-rate");
const MAX_CONNECTIONS = number("max-connections");
const WATERMARKS = !args["no-watermarks"];

// Limits of docs/protocol.md.
const LEEWAY_S = 60;
const MAX_BODY_CHARS = 4000;
const MAX_PACKET_BYTES = 64 * 1024;
const SYNC_DEFAULT = 100;
const SYNC_MAX = 500;
const PRESENCE_MAX = 100;
const TYPING_EXPIRY_MS = 6000;
const PRESENCE_GRACE_MS = 5000;
// A socket with this much unsent data cannot keep up: it is disconnected, not skipped.
const SLOW_SOCKET_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Store

const db = new Database(args.db);
db.pragma("journal_mode = WAL");
// An ack is sent only after the commit is durable.
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
db.exec(`
  CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ts INTEGER NOT NULL,
    reply_to INTEGER,
    PRIMARY KEY (room, seq),
    UNIQUE (sender, client_id)
  );
  CREATE TABLE IF NOT EXISTS members (
    room TEXT NOT NULL,
    user TEXT NOT NULL,
    member INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    read_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user)
  );
  CREATE INDEX IF NOT EXISTS members_by_user ON members (user, room);
  CREATE TABLE IF NOT EXISTS users (
    user TEXT PRIMARY KEY,
    last_seen INTEGER
  );
`);

const sql = {
  lastSeq: db.prepare("SELECT last_seq FROM rooms WHERE room = ?").pluck(),
  ensureRoom: db.prepare("INSERT INTO rooms (room, last_seq) VALUES (?, 0) ON CONFLICT DO NOTHING"),
  bumpRoom: db.prepare("UPDATE rooms SET last_seq = last_seq + 1 WHERE room = ? RETURNING last_seq").pluck(),
  membership: db.prepare("SELECT member, delivered_seq, read_seq FROM members WHERE room = ? AND user = ?"),
  join: db.prepare(
    `INSERT INTO members (room, user, member) VALUES (?, ?, 1)
     ON CONFLICT (room, user) DO UPDATE SET member = 1`,
  ),
  leave: db.prepare("UPDATE members SET member = 0 WHERE room = ? AND user = ? AND member = 1"),
  members: db.prepare(
    "SELECT user, delivered_seq, read_seq FROM members WHERE room = ? AND member = 1 ORDER BY user",
  ),
  setWatermarks: db.prepare("UPDATE members SET delivered_seq = ?, read_seq = ? WHERE room = ? AND user = ?"),
  byClientId: db.prepare("SELECT * FROM messages WHERE sender = ? AND client_id = ?"),
  insert: db.prepare(
    `INSERT INTO messages (room, seq, sender, client_id, body, ts, reply_to)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ),
  after: db.prepare("SELECT * FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?"),
  lastSeen: db.prepare("SELECT last_seen FROM users WHERE user = ?").pluck(),
  setLastSeen: db.prepare(
    `INSERT INTO users (user, last_seen) VALUES (?, ?)
     ON CONFLICT (user) DO UPDATE SET last_seen = excluded.last_seen`,
  ),
  roommates: db.prepare(
    `SELECT DISTINCT other.user FROM members mine
     JOIN members other ON other.room = mine.room AND other.member = 1
     WHERE mine.user = ? AND mine.member = 1`,
  ).pluck(),
};

// Stores one message in its own transaction: the room's next seq, or the original when
// (sender, client_id) was stored before.
const storeMessage = db.transaction((room, sender, clientId, body, replyTo) => {
  const original = sql.byClientId.get(sender, clientId);
  if (original) return { message: toMessage(original), duplicate: true };
  sql.ensureRoom.run(room);
  const seq = sql.bumpRoom.get(room);
  const ts = Date.now();
  sql.insert.run(room, seq, sender, clientId, body, ts, replyTo ?? null);
  return {
    message: toMessage({ room, seq, sender, client_id: clientId, body, ts, reply_to: replyTo ?? null }),
    duplicate: false,
  };
});

const joinRoom = db.transaction((room, user) => {
  const before = sql.membership.get(room, user);
  sql.ensureRoom.run(room);
  sql.join.run(room, user);
  return { becameMember: !before || before.member !== 1 };
});

function toMessage(row) {
  const message = {
    room: row.room,
    id: `${row.room}:${row.seq}`,
    seq: row.seq,
    client_id: row.client_id,
    sender: row.sender,
    body: row.body,
    ts: row.ts,
  };
  if (row.reply_to !== null && row.reply_to !== undefined) message.reply_to = row.reply_to;
  return message;
}

// ---------------------------------------------------------------------------------------
// Validation

class RequestError extends Error {
  constructor(code, message, retryAfterMs) {
    super(message);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}
const invalid = (message) => new RequestError("invalid_payload", message);

const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BLANK = /^\p{White_Space}*$/u;
// Control characters (Unicode category Cc) other than \t (U+0009) and \n (U+000A).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u;

function object(arg) {
  if (arg === null || typeof arg !== "object" || Array.isArray(arg)) {
    throw invalid("the argument must be a JSON object");
  }
  return arg;
}
function id(value, what) {
  if (typeof value !== "string" || !ID.test(value)) {
    throw invalid(`${what} must be 1-64 characters of [A-Za-z0-9_.-]`);
  }
  return value;
}
// A non-negative integer (a seq); values past what a double holds exactly only ever mean
// "beyond anything stored", so they are clamped.
function seq(value, what) {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative integer`);
  }
  return Math.min(value, Number.MAX_SAFE_INTEGER);
}
function clientId(value) {
  if (typeof value !== "string" || !UUID.test(value)) throw invalid("client_id must be a UUID");
  return value.toLowerCase();
}
function body(value) {
  if (typeof value !== "string") throw invalid("body must be a string");
  if (!value.isWellFormed()) throw invalid("body must be valid Unicode");
  const chars = [...value].length;
  if (chars > MAX_BODY_CHARS) {
    throw new RequestError("too_large", `body has ${chars} characters, at most ${MAX_BODY_CHARS}`);
  }
  if (BLANK.test(value)) throw invalid("body must not be empty or blank");
  if (CONTROL.test(value)) {
    throw invalid("body must hold no control characters but \\n and \\t");
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Rates: GCRA per user and class, burst twice the rate.

const limiters = new Map();
function limit(user, kind, rate) {
  const key = `${kind}\u0000${user}`;
  const now = Date.now();
  const interval = 1000 / rate;
  const tolerance = (2 * rate - 1) * interval;
  const tat = Math.max(limiters.get(key) ?? now, now);
  if (tat - tolerance > now) {
    const wait = Math.max(1, Math.ceil(tat - tolerance - now));
    throw new RequestError("rate_limited", `rate limit exceeded, retry in ${wait} ms`, wait);
  }
  limiters.set(key, tat + interval);
}
// Forget limiters that are back to a full burst, so the map does not grow for ever.
setInterval(() => {
  const now = Date.now();
  for (const [key, tat] of limiters) if (tat <= now) limiters.delete(key);
}, 10_000).unref();

// ---------------------------------------------------------------------------------------
// Tokens: HS256 JWT, `sub` the user id, `exp` checked with leeway; `nbf`, `iat` honoured.

const expectedHeaderAlg = "HS256";
function verifyToken(token) {
  if (typeof token !== "string" || token.length > 4096) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    return null;
  }
  if (header === null || typeof header !== "object" || header.alg !== expectedHeaderAlg) return null;
  const signature = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest("base64url");
  const given = Buffer.from(parts[2]);
  const wanted = Buffer.from(signature);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return null;
  if (claims === null || typeof claims !== "object") return null;
  const now = Date.now() / 1000;
  if (typeof claims.sub !== "string" || !ID.test(claims.sub)) return null;
  if (typeof claims.exp !== "number" || now > claims.exp + LEEWAY_S) return null;
  if (claims.nbf !== undefined && (typeof claims.nbf !== "number" || claims.nbf > now + LEEWAY_S)) return null;
  if (claims.iat !== undefined && (typeof claims.iat !== "number" || claims.iat > now + LEEWAY_S)) return null;
  return { user: claims.sub, exp: claims.exp };
}

// ---------------------------------------------------------------------------------------
// Socket.IO

const http = createServer((_, response) => {
  response.writeHead(404).end();
});
const io = new Server(http, {
  serveClient: false,
  maxHttpBufferSize: MAX_PACKET_BYTES,
  // The connection state recovery of socket.io is not used: the protocol recovers by seq.
});

const roomKey = (room) => `room:${room}`;
const userKey = (user) => `user:${user}`;

// Open sockets per user, and users within their presence grace period.
const sockets = new Map();
const graceTimers = new Map();
// Who is typing where: `${room}\0${user}` → { socket, timer }.
const typing = new Map();

function presenceOf(user) {
  const online = (sockets.get(user)?.size ?? 0) > 0 || graceTimers.has(user);
  return { user, online, last_seen: sql.lastSeen.get(user) ?? null };
}

function announcePresence(user) {
  const mates = sql.roommates.all(user);
  if (mates.length === 0) return;
  io.to(mates.map(userKey)).emit("presence:update", presenceOf(user));
}

io.use((socket, next) => {
  const auth = socket.handshake.auth;
  const claims = verifyToken(auth && typeof auth === "object" ? auth.token : undefined);
  if (!claims) return next(new Error("unauthorized"));
  if ((sockets.get(claims.user)?.size ?? 0) >= MAX_CONNECTIONS) {
    return next(new Error("too_many_connections"));
  }
  socket.data.user = claims.user;
  socket.data.exp = claims.exp;
  next();
});

io.on("connection", (socket) => {
  const user = socket.data.user;
  socket.join(userKey(user));
  let mine = sockets.get(user);
  if (!mine) sockets.set(user, (mine = new Set()));
  const wasOnline = mine.size > 0 || graceTimers.has(user);
  mine.add(socket.id);
  if (graceTimers.has(user)) {
    // Back inside the grace period: nothing to announce.
    clearTimeout(graceTimers.get(user));
    graceTimers.delete(user);
  }
  if (!wasOnline) guarded(() => announcePresence(user));

  for (const [event, handler] of Object.entries(handlers)) {
    socket.on(event, (...params) => {
      const ack = typeof params[params.length - 1] === "function" ? params.pop() : null;
      let answer;
      try {
        if (params.length !== 1) throw invalid("exactly one argument is expected");
        if (Date.now() / 1000 > socket.data.exp + LEEWAY_S) {
          throw new RequestError("unauthorized", "the token expired");
        }
        answer = { ok: true, ...handler(socket, user, object(params[0])) };
      } catch (err) {
        answer = errorAnswer(err);
      }
      if (ack) ack(answer);
    });
  }

  socket.on("disconnect", () => {
    guarded(() => {
      for (const [key, entry] of typing) {
        if (entry.socket === socket) stopTyping(key, entry);
      }
      mine.delete(socket.id);
      if (mine.size > 0) return;
      sockets.delete(user);
      sql.setLastSeen.run(user, Date.now());
      graceTimers.set(
        user,
        setTimeout(() => {
          graceTimers.delete(user);
          if (!sockets.has(user)) guarded(() => announcePresence(user));
        }, PRESENCE_GRACE_MS),
      );
    });
  });
});

function errorAnswer(err) {
  if (err instanceof RequestError) {
    const error = { code: err.code, message: err.message };
    if (err.retryAfterMs !== undefined) error.retry_after_ms = err.retryAfterMs;
    return { ok: false, error };
  }
  console.error("node-server: request failed:", err);
  return { ok: false, error: { code: "internal", message: "the server failed; nothing was committed" } };
}

function guarded(work) {
  try {
    work();
  } catch (err) {
    console.error("node-server:", err);
  }
}

function requireMember(room, user) {
  const row = sql.membership.get(room, user);
  if (!row || row.member !== 1) throw new RequestError("forbidden", `not a member of ${room}`);
  return row;
}

// Disconnects the sockets of `room` that cannot keep up, so they reconnect and sync.
function dropSlowSockets(room) {
  const ids = io.sockets.adapter.rooms.get(roomKey(room));
  if (!ids) return;
  for (const socketId of ids) {
    const socket = io.sockets.sockets.get(socketId);
    const pending = socket?.conn?.transport?.socket?.bufferedAmount ?? 0;
    if (pending > SLOW_SOCKET_BYTES) socket.disconnect(true);
  }
}

function watermarksOf(room) {
  return sql.members.all(room);
}

// Moves the caller's delivered (or read, which also moves delivered) watermark forward to
// `up_to_seq`, capped at the room's last seq; never back. Announces a move to the room.
function moveWatermarks(user, arg, read) {
  limit(user, "request", REQUEST_RATE);
  const room = id(arg.room, "room");
  const upTo = seq(arg.up_to_seq, "up_to_seq");
  const row = requireMember(room, user);
  const before = { ...row };
  const capped = Math.min(upTo, sql.lastSeq.get(room) ?? 0);
  if (read) row.read_seq = Math.max(row.read_seq, capped);
  row.delivered_seq = Math.max(row.delivered_seq, capped);
  if (row.read_seq !== before.read_seq || row.delivered_seq !== before.delivered_seq) {
    sql.setWatermarks.run(row.delivered_seq, row.read_seq, room, user);
    broadcastWatermarks(room, user, row);
  }
  return { row, before };
}

function broadcastWatermarks(room, user, row) {
  io.to(roomKey(room)).emit("receipt:update", {
    room,
    user,
    delivered_seq: row.delivered_seq,
    read_seq: row.read_seq,
  });
}

// typing:start (re)arms the expiry and announces only a change; typing:stop ends it.
function setTyping(socket, user, arg, on) {
  limit(user, "typing", TYPING_RATE);
  const room = id(arg.room, "room");
  requireMember(room, user);
  const key = `${room}\u0000${user}`;
  const entry = typing.get(key);
  if (entry) {
    clearTimeout(entry.timer);
    entry.socket = socket;
  }
  if (!on) {
    if (entry) stopTyping(key, entry);
    return {};
  }
  if (!entry) io.to(roomKey(room)).except(socket.id).emit("typing:update", { room, user, typing: true });
  const current = entry ?? { socket };
  current.timer = setTimeout(() => guarded(() => stopTyping(key, current)), TYPING_EXPIRY_MS);
  typing.set(key, current);
  return {};
}

function stopTyping(key, entry) {
  clearTimeout(entry.timer);
  typing.delete(key);
  const [room, user] = key.split("\u0000");
  io.to(roomKey(room)).except(entry.socket.id).emit("typing:update", { room, user, typing: false });
}

const handlers = {
  "room:join"(socket, user, arg) {
    limit(user, "request", REQUEST_RATE);
    const room = id(arg.room, "room");
    const { becameMember } = joinRoom(room, user);
    socket.join(roomKey(room));
    const members = watermarksOf(room);
    const own = members.find((m) => m.user === user) ?? { delivered_seq: 0, read_seq: 0 };
    if (becameMember) io.to(roomKey(room)).emit("room:member", { room, user, joined: true });
    const answer = {
      room,
      last_seq: sql.lastSeq.get(room) ?? 0,
      members: members.map((m) => m.user),
      delivered_seq: own.delivered_seq,
      read_seq: own.read_seq,
    };
    if (WATERMARKS) {
      answer.watermarks = members.map((m) => ({
        user: m.user,
        delivered_seq: m.delivered_seq,
        read_seq: m.read_seq,
      }));
    }
    return answer;
  },

  "room:leave"(socket, user, arg) {
    limit(user, "request", REQUEST_RATE);
    const room = id(arg.room, "room");
    if (sql.leave.run(room, user).changes > 0) {
      io.to(roomKey(room)).emit("room:member", { room, user, joined: false });
      const key = `${room}\u0000${user}`;
      const entry = typing.get(key);
      if (entry) stopTyping(key, entry);
    }
    io.in(userKey(user)).socketsLeave(roomKey(room));
    return {};
  },

  "message:send"(socket, user, arg) {
    limit(user, "send", SEND_RATE);
    const room = id(arg.room, "room");
    const key = clientId(arg.client_id);
    const text = body(arg.body);
    const replyTo = arg.reply_to === undefined || arg.reply_to === null ? null : arg.reply_to;
    if (replyTo !== null && (!Number.isSafeInteger(replyTo) || replyTo < 0)) {
      throw invalid("reply_to must be a seq (a non-negative integer below 2^53)");
    }
    // A resend is answered with the original, wherever it was sent and whoever is a member now.
    const original = sql.byClientId.get(user, key);
    if (original) {
      return { id: toMessage(original).id, seq: original.seq, ts: original.ts, duplicate: true };
    }
    requireMember(room, user);
    const { message, duplicate } = storeMessage(room, user, key, text, replyTo);
    if (!duplicate) {
      io.to(roomKey(room)).emit("message:new", message);
      dropSlowSockets(room);
    }
    return { id: message.id, seq: message.seq, ts: message.ts, duplicate };
  },

  "message:sync"(socket, user, arg) {
    limit(user, "request", REQUEST_RATE);
    const room = id(arg.room, "room");
    const after = seq(arg.after_seq, "after_seq");
    let count = SYNC_DEFAULT;
    if (arg.limit !== undefined) {
      if (!Number.isInteger(arg.limit) || arg.limit < 1 || arg.limit > SYNC_MAX) {
        throw invalid(`limit must be 1-${SYNC_MAX}`);
      }
      count = arg.limit;
    }
    requireMember(room, user);
    const rows = sql.after.all(room, after, count + 1);
    const hasMore = rows.length > count;
    return {
      messages: rows.slice(0, count).map(toMessage),
      last_seq: sql.lastSeq.get(room) ?? 0,
      has_more: hasMore,
    };
  },

  "receipt:delivered"(socket, user, arg) {
    const { row } = moveWatermarks(user, arg, false);
    return { delivered_seq: row.delivered_seq };
  },

  "receipt:read"(socket, user, arg) {
    const { row, before } = moveWatermarks(user, arg, true);
    return { read_seq: row.read_seq, updated: row.read_seq - before.read_seq };
  },

  "typing:start"(socket, user, arg) {
    return setTyping(socket, user, arg, true);
  },

  "typing:stop"(socket, user, arg) {
    return setTyping(socket, user, arg, false);
  },

  "presence:get"(socket, user, arg) {
    limit(user, "request", REQUEST_RATE);
    if (!Array.isArray(arg.users)) throw invalid("users must be an array of user ids");
    if (arg.users.length > PRESENCE_MAX) {
      throw new RequestError("too_large", `at most ${PRESENCE_MAX} users per request`);
    }
    const users = arg.users.map((u) => id(u, "user"));
    return { presence: users.map(presenceOf) };
  },
};

function shutdown() {
  io.close();
  db.close();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

http.listen(port, args.host, () => {
  const address = http.address();
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  console.log(JSON.stringify({ url: `http://${host}:${address.port}`, port: address.port }));
});
