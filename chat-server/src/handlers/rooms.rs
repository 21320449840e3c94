//! `room:join`, `room:resume` and `room:leave`: durable membership, the socket's Socket.IO
//! rooms, and the `room:member` announcement when membership changes.

use chat_protocol::events::names as event;
use chat_protocol::limits::{DEFAULT_RESUME_LIMIT, MAX_RESUME_MESSAGES, RESUME_ROOMS_PER_REQUEST};
use chat_protocol::requests::{extensions, ResumeRooms, RoomRequest};
use chat_protocol::results::{JoinResult, LeaveResult, ResumeResult, ResumedRoom};
use chat_protocol::{RoomId, RoomMember, UserId};
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;

use super::Reply;
use crate::fanout::emit_to;
use crate::rate::RateClass;
use crate::state::{room_key, user_key, AppState};
use crate::store::Joined;

pub(super) async fn join(
    app: &AppState,
    io: &SocketIo,
    socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<JoinResult> {
    let joined = app
        .store
        .join(&request.room, user)
        .await
        .map_err(|e| e.to_wire())?;
    socket.join(room_key(&request.room));
    let mut result = answer(io, &request.room, user, joined);
    result.extensions = offered(app);
    Ok(result)
}

/// `room:resume`: every room joined and its first page of missed messages read in one store
/// operation; one request of the rate limit per 100 rooms.
pub(super) async fn resume(
    app: &AppState,
    io: &SocketIo,
    socket: &SocketRef,
    user: &UserId,
    request: ResumeRooms,
) -> Reply<ResumeResult> {
    let weight = request.rooms.len().div_ceil(RESUME_ROOMS_PER_REQUEST);
    // `respond` took the first request already.
    app.limiters.check_extra(
        RateClass::Other,
        user,
        u32::try_from(weight.saturating_sub(1)).unwrap_or(u32::MAX),
    )?;
    let limit = request.limit.unwrap_or(DEFAULT_RESUME_LIMIT);
    let rooms = request
        .rooms
        .into_iter()
        .map(|entry| (entry.room, entry.after_seq))
        .collect::<Vec<_>>();
    let names: Vec<RoomId> = rooms.iter().map(|(room, _)| room.clone()).collect();
    // The socket joins before the pages are read: a message committed after the read then
    // reaches it live (the client drops what the page already held), where joining after
    // the read could miss one committed in between.
    socket.join(names.iter().map(room_key).collect::<Vec<_>>());
    let resumed = app
        .store
        .resume(user, rooms, limit, MAX_RESUME_MESSAGES)
        .await
        .map_err(|e| e.to_wire())?;
    let rooms = names
        .iter()
        .zip(resumed)
        .map(|(room, (joined, page))| ResumedRoom {
            joined: answer(io, room, user, joined),
            messages: page.messages,
            has_more: page.has_more,
        })
        .collect();
    Ok(ResumeResult {
        rooms,
        extensions: offered(app),
    })
}

/// The extensions this server answers, announced in every join and resume answer.
fn offered(app: &AppState) -> Vec<String> {
    let mut names = Vec::new();
    if app.config.resume_extension {
        names.push(extensions::ROOM_RESUME.to_owned());
    }
    if app.config.send_batch_extension {
        names.push(extensions::MESSAGE_SEND_BATCH.to_owned());
    }
    names
}

/// The `room:join` answer for `joined`, announcing the membership if it is new.
fn answer(io: &SocketIo, room: &RoomId, user: &UserId, joined: Joined) -> JoinResult {
    if joined.newly_joined {
        let member = RoomMember {
            room: room.clone(),
            user: user.clone(),
            joined: true,
        };
        emit_to(io, vec![room_key(room)], event::ROOM_MEMBER, &member);
    }
    let own = joined.watermarks.iter().find(|w| &w.user == user);
    JoinResult {
        delivered_seq: own.map_or(0, |w| w.delivered_seq),
        read_seq: own.map_or(0, |w| w.read_seq),
        room: room.clone(),
        last_seq: joined.last_seq,
        members: joined.members,
        watermarks: joined.watermarks,
        extensions: Vec::new(),
    }
}

pub(super) async fn leave(
    app: &AppState,
    io: &SocketIo,
    _socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<LeaveResult> {
    let was_member = app
        .store
        .leave(&request.room, user)
        .await
        .map_err(|e| e.to_wire())?;
    let key = room_key(&request.room);
    if let Some(ns) = io.of("/") {
        if let Err(e) = ns.to(user_key(user)).leave(key.clone()).await {
            tracing::warn!(error = %e, "sockets could not leave the room");
        }
    }
    if was_member {
        let member = RoomMember {
            room: request.room,
            user: user.clone(),
            joined: false,
        };
        emit_to(io, vec![key], event::ROOM_MEMBER, &member);
    }
    Ok(LeaveResult {})
}
