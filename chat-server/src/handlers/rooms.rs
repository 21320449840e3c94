//! `room:join`, `room:resume` and `room:leave`: durable membership, the socket's Socket.IO
//! rooms, and the `room:member` announcement when membership changes.

use crate::cluster::{Io, Socket};
use chat_protocol::events::names as event;
use chat_protocol::limits::{DEFAULT_RESUME_LIMIT, MAX_RESUME_MESSAGES, RESUME_ROOMS_PER_REQUEST};
use chat_protocol::requests::{extensions, ResumeRooms, RoomRequest};
use chat_protocol::results::{JoinResult, LeaveResult, ResumeResult, ResumedRoom};
use chat_protocol::{RoomId, RoomMember, UserId};

use super::Reply;
use crate::fanout::announce;
use crate::rate::RateClass;
use crate::state::{room_key, user_key, AppState};
use crate::store::Joined;

pub(super) async fn join(
    app: &AppState,
    io: &Io,
    socket: &Socket,
    user: &UserId,
    request: RoomRequest,
) -> Reply<JoinResult> {
    let joined = app
        .store
        .join(&request.room, user)
        .await
        .map_err(|e| e.to_wire())?;
    socket.join(room_key(&request.room));
    let mut result = answer(app, io, &request.room, user, joined).await;
    result.extensions = offered(app);
    Ok(result)
}

/// `room:resume`: every room joined and its first page of missed messages read in one store
/// operation; one request of the rate limit per 100 rooms.
pub(super) async fn resume(
    app: &AppState,
    io: &Io,
    socket: &Socket,
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
    let mut rooms = Vec::with_capacity(names.len());
    for (room, (joined, page)) in names.iter().zip(resumed) {
        rooms.push(ResumedRoom {
            joined: answer(app, io, room, user, joined).await,
            messages: page.messages,
            has_more: page.has_more,
        });
    }
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

/// The `room:join` answer for `joined`, announcing the membership if it is new; this
/// server's tail of the room starts at its `last_seq` if it had none.
async fn answer(
    app: &AppState,
    io: &Io,
    room: &RoomId,
    user: &UserId,
    joined: Joined,
) -> JoinResult {
    app.watches.joined(room, joined.last_seq);
    if joined.newly_joined {
        let member = RoomMember {
            room: room.clone(),
            user: user.clone(),
            joined: true,
        };
        announce(
            io,
            app.everywhere(),
            vec![room_key(room)],
            event::ROOM_MEMBER,
            &member,
        )
        .await;
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
    io: &Io,
    _socket: &Socket,
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
        // The user's sockets on every server leave; if the others cannot be told (Redis
        // down), this server's sockets leave all the same.
        if let Err(e) = ns.clone().to(user_key(user)).leave(key.clone()).await {
            tracing::warn!(error = %e, "the other servers' sockets could not leave the room");
            if let Err(e) = ns.local().to(user_key(user)).leave(key.clone()).await {
                tracing::warn!(error = %e, "sockets could not leave the room");
            }
        }
    }
    if was_member {
        let member = RoomMember {
            room: request.room,
            user: user.clone(),
            joined: false,
        };
        announce(io, app.everywhere(), vec![key], event::ROOM_MEMBER, &member).await;
    }
    Ok(LeaveResult {})
}
