//! `room:join` and `room:leave`: durable membership, the socket's Socket.IO rooms, and the
//! `room:member` announcement when membership changes.

use chat_protocol::events::names as event;
use chat_protocol::requests::RoomRequest;
use chat_protocol::results::{JoinResult, LeaveResult};
use chat_protocol::{RoomMember, UserId};
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;

use super::Reply;
use crate::fanout::emit_to;
use crate::state::{room_key, user_key, AppState};

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
    if joined.newly_joined {
        let member = RoomMember {
            room: request.room.clone(),
            user: user.clone(),
            joined: true,
        };
        emit_to(
            io,
            vec![room_key(&request.room)],
            event::ROOM_MEMBER,
            &member,
        );
    }
    let own = joined.watermarks.iter().find(|w| &w.user == user);
    Ok(JoinResult {
        delivered_seq: own.map_or(0, |w| w.delivered_seq),
        read_seq: own.map_or(0, |w| w.read_seq),
        room: request.room,
        last_seq: joined.last_seq,
        members: joined.members,
        watermarks: joined.watermarks,
    })
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
