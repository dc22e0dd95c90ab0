//! Reading back a capture (`tcpdump -w`, classic pcap, Ethernet, IPv4): the bytes each side
//! of one TCP connection sent, and the TLS records in them.

use std::net::Ipv4Addr;

/// The two directions of the TCP traffic to and from `server_port`, in order, each segment
/// once (retransmissions dropped).
#[derive(Debug, Default)]
pub struct Conversation {
    /// What the client sent.
    pub client: Vec<u8>,
    /// What the server sent.
    pub server: Vec<u8>,
    /// Connections the client opened (SYNs without ACK).
    pub connections: usize,
}

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_be_bytes([b[i], b[i + 1]]))
}

fn u32_at(b: &[u8], i: usize, little: bool) -> u32 {
    let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if little {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

/// Parses a capture file's TCP traffic with `server` (address and port).
pub fn conversation(file: &[u8], server: (Ipv4Addr, u16)) -> Conversation {
    assert!(file.len() >= 24, "not a pcap file");
    let little = match &file[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        other => panic!("not a classic pcap file: magic {other:02x?}"),
    };
    assert_eq!(u32_at(file, 20, little), 1, "link type is not Ethernet");
    let mut out = Conversation::default();
    let (mut next_client, mut next_server): (Option<u32>, Option<u32>) = (None, None);
    let mut at = 24;
    while at + 16 <= file.len() {
        let len = usize::try_from(u32_at(file, at + 8, little)).unwrap();
        let frame = &file[at + 16..(at + 16 + len).min(file.len())];
        at += 16 + len;
        if frame.len() < 14 + 20 || u16_at(frame, 12) != 0x0800 {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 6 || ip.len() < ihl + 20 {
            continue;
        }
        let total = u16_at(ip, 2).min(ip.len());
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let tcp = &ip[ihl..total];
        let (sport, dport) = (u16_at(tcp, 0), u16_at(tcp, 2));
        let seq = u32_at(tcp, 4, false);
        let flags = tcp[13];
        let offset = usize::from(tcp[12] >> 4) * 4;
        let payload = tcp.get(offset..).unwrap_or_default();
        let port = usize::from(server.1);
        let from_client = dport == port && src != server.0;
        let from_server = sport == port && src == server.0;
        if !(from_client || from_server) {
            continue;
        }
        let syn = flags & 0x02 != 0;
        if syn {
            if from_client && flags & 0x10 == 0 {
                out.connections += 1;
            }
            let next = if from_client {
                &mut next_client
            } else {
                &mut next_server
            };
            *next = Some(seq.wrapping_add(1));
            continue;
        }
        if payload.is_empty() {
            continue;
        }
        let (next, bytes) = if from_client {
            (&mut next_client, &mut out.client)
        } else {
            (&mut next_server, &mut out.server)
        };
        // A segment we already have (a retransmission) is skipped.
        if let Some(expected) = *next {
            if seq != expected {
                continue;
            }
        }
        let len = u32::try_from(payload.len()).unwrap();
        *next = Some(seq.wrapping_add(len));
        bytes.extend_from_slice(payload);
    }
    out
}

/// A TLS record: its content type (20 change-cipher-spec, 21 alert, 22 handshake, 23
/// application data) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Content type.
    pub kind: u8,
    /// Length of its fragment.
    pub len: usize,
}

/// The TLS records in `bytes` (which must start at a record), up to the first that is cut.
pub fn tls_records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = u16_at(bytes, at + 3);
        out.push(Record {
            kind: bytes[at],
            len,
        });
        at += 5 + len;
    }
    out
}
