//! The SDK's WebSocket transport reading a server: the input is the byte stream a server
//! sends after the HTTP upgrade. tungstenite reads it as a client with the transport's own
//! settings (`chat_sdk::transport::fuzzing::websocket_config`, which bounds frames and
//! messages), and every text frame goes through the transport's Engine.IO / Socket.IO
//! parser, an `OPEN` packet through its heartbeat reading. A malicious server is input too:
//! nothing may panic, and no frame over the bound may be taken.
#![no_main]

use std::io::{Read, Write};

use chat_sdk::transport::fuzzing::{
    heartbeat_from_open, parse_server_frame, websocket_config, ServerFrame, MAX_HEARTBEAT,
};
use chat_sdk::transport::MAX_MESSAGE_BYTES;
use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// The server's bytes to read; what the client writes back (pongs, close) is dropped.
struct Wire<'a> {
    input: &'a [u8],
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut socket =
        WebSocket::from_raw_socket(Wire { input: data }, Role::Client, Some(websocket_config()));
    // Each frame takes at least two bytes, so this ends; the bound is a safety net.
    for _ in 0..=data.len() {
        match socket.read() {
            Ok(Message::Text(text)) => {
                assert!(text.len() <= MAX_MESSAGE_BYTES);
                if let ServerFrame::Open(json) = parse_server_frame(text.as_str()) {
                    if let Ok(heartbeat) = heartbeat_from_open(&json) {
                        assert!(heartbeat <= MAX_HEARTBEAT);
                    }
                }
            }
            Ok(Message::Binary(bytes)) => assert!(bytes.len() <= MAX_MESSAGE_BYTES),
            Ok(_) => {}
            Err(_) => break,
        }
    }
});
