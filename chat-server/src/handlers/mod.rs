//! One function per client request: decode, check the rate limit and membership, act, answer.
//!
//! Every request passes through [`respond`], which turns any failure into an error ack with a
//! code, so no request is ever dropped without an answer and nothing here can panic on input.
//! The handlers live in one module per protocol area (rooms, messages, receipts, typing,
//! presence); this module holds what they share: registration and the reply helpers.

use crate::cluster::{ChatAdapter, Io, Socket};
use chat_protocol::ack;
use chat_protocol::requests::names as request;
use chat_protocol::{decode_request, ErrorBody, ErrorCode, RoomId, UserId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, Extension, State, TryData};
use socketioxide::{SendError, SocketError};

use crate::auth::TokenExpiry;
use crate::rate::RateClass;
use crate::request_order::Turn;
use crate::state::AppState;

mod messages;
mod presence;
mod receipts;
mod rooms;
mod typing;

type Reply<T> = Result<T, ErrorBody>;

fn forbidden(room: &impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Forbidden,
        format!("not a member of room {room}; join it first"),
    )
}

/// Rate-limits, decodes and runs one request; the answer is the ack to send.
async fn respond<Req, Res, Fut>(
    event: &'static str,
    app: &AppState,
    class: RateClass,
    user: &UserId,
    argument: Result<Value, impl std::fmt::Display>,
    act: impl FnOnce(Req) -> Fut,
) -> Value
where
    Req: DeserializeOwned,
    Res: Serialize,
    Fut: std::future::Future<Output = Reply<Res>>,
{
    let outcome = async {
        app.limiters.check(class, user)?;
        let argument = argument.map_err(|e| {
            ErrorBody::new(
                ErrorCode::InvalidPayload,
                format!("the argument must be one JSON object: {e}"),
            )
        })?;
        let parsed =
            decode_request::<Req>(argument).map_err(|e| ErrorBody::new(e.code, e.message))?;
        act(parsed).await
    }
    .await;
    match outcome {
        Ok(result) => {
            crate::metrics::REQUESTS.inc(&[event, "ok"]);
            ack::ok(&result)
        }
        Err(error) => {
            crate::metrics::REQUESTS.inc(&[event, error.code.as_str()]);
            if error.code == ErrorCode::RateLimited {
                crate::metrics::RATE_LIMITED.inc(&[class.as_str()]);
            }
            ack::err(&error)
        }
    }
}

fn send_ack(socket: &Socket, ack: AckSender<ChatAdapter>, reply: Value) {
    match ack.send(&reply) {
        Ok(()) => {}
        // Gone already: the client resends what was not acked; idempotency makes that safe.
        Err(SendError::Socket(SocketError::Closed)) => {
            tracing::debug!(sid = %socket.id, "ack not sent: socket closed");
        }
        // A full buffer means the socket cannot keep up: drop it so its client reconnects
        // promptly instead of waiting for its ack timeout.
        Err(e) => {
            tracing::warn!(sid = %socket.id, error = %e, "ack could not be sent; disconnecting socket");
            crate::fanout::disconnect(socket.clone());
        }
    }
}

macro_rules! on_request {
    ($socket:expr, $event:expr, $class:expr, $handler:path) => {
        $socket.on(
            $event,
            |socket: Socket,
             io: Io,
             State(app): State<AppState>,
             Extension(user): Extension<UserId>,
             Extension(expiry): Extension<TokenExpiry>,
             ack: AckSender<ChatAdapter>,
             TryData(argument): TryData<Value>,
             turn: Turn| async move {
                let _turn = turn.wait().await;
                if expiry.has_passed() {
                    refuse_expired($event, &socket, ack);
                    return;
                }
                let reply = respond($event, &app, $class, &user, argument, |request| {
                    $handler(&app, &io, &socket, &user, request)
                })
                .await;
                send_ack(&socket, ack, reply);
            },
        )
    };
}

/// The answer to a request on a socket whose token has expired since it connected: an
/// `unauthorized` ack, then the socket is closed so that its client reconnects with a new
/// token (the SDK's refresh hook).
fn refuse_expired(event: &str, socket: &Socket, ack: AckSender<ChatAdapter>) {
    crate::metrics::REQUESTS.inc(&[event, ErrorCode::Unauthorized.as_str()]);
    let error = ErrorBody::new(
        ErrorCode::Unauthorized,
        "the token has expired; reconnect with a new one",
    );
    send_ack(socket, ack, ack::err(&error));
    crate::fanout::disconnect(socket.clone());
}

/// Registers every request handler on a freshly connected socket; the extensions
/// (`room:resume`, `message:send_batch`) only when they are on.
pub fn register(socket: &Socket, config: &crate::config::ServerConfig) {
    let resume_extension = config.resume_extension;
    on_request!(socket, request::ROOM_JOIN, RateClass::Other, rooms::join);
    if resume_extension {
        on_request!(
            socket,
            request::ROOM_RESUME,
            RateClass::Other,
            rooms::resume
        );
    }
    on_request!(socket, request::ROOM_LEAVE, RateClass::Other, rooms::leave);
    on_request!(
        socket,
        request::MESSAGE_SEND,
        RateClass::Send,
        messages::send
    );
    if config.send_batch_extension {
        on_request!(
            socket,
            request::MESSAGE_SEND_BATCH,
            RateClass::Send,
            messages::send_batch
        );
    }
    on_request!(
        socket,
        request::MESSAGE_SYNC,
        RateClass::Other,
        messages::sync
    );
    on_request!(
        socket,
        request::RECEIPT_DELIVERED,
        RateClass::Other,
        receipts::delivered
    );
    on_request!(
        socket,
        request::RECEIPT_READ,
        RateClass::Other,
        receipts::read
    );
    on_request!(
        socket,
        request::TYPING_START,
        RateClass::Typing,
        typing::typing_start
    );
    on_request!(
        socket,
        request::TYPING_STOP,
        RateClass::Typing,
        typing::typing_stop
    );
    on_request!(
        socket,
        request::PRESENCE_GET,
        RateClass::Other,
        presence::presence_get
    );
    socket.on_fallback(unknown_event);
}

/// Any event the server has no handler for: an `invalid_payload` ack naming it (when the
/// client asked for one), counted against the user's rate like any other request so that
/// unknown events are no free way to keep the server busy.
async fn unknown_event(
    socket: Socket,
    State(app): State<AppState>,
    Extension(user): Extension<UserId>,
    Extension(expiry): Extension<TokenExpiry>,
    Event(event): Event,
    ack: AckSender<ChatAdapter>,
) {
    if expiry.has_passed() {
        refuse_expired("unknown", &socket, ack);
        return;
    }
    let error = match app.limiters.check(RateClass::Other, &user) {
        Err(limited) => limited,
        Ok(()) => {
            let shown: String = event.chars().take(64).collect();
            ErrorBody::new(
                ErrorCode::InvalidPayload,
                format!("unknown event {shown:?}; docs/protocol.md lists the requests"),
            )
        }
    };
    crate::metrics::REQUESTS.inc(&["unknown", error.code.as_str()]);
    send_ack(&socket, ack, ack::err(&error));
}

/// `forbidden` unless `user` is a member of `room`.
async fn require_member(app: &AppState, room: &RoomId, user: &UserId) -> Reply<()> {
    if app
        .store
        .is_member(room, user)
        .await
        .map_err(|e| e.to_wire())?
    {
        Ok(())
    } else {
        Err(forbidden(room))
    }
}
