//! The typed commands the webview may call (each granted by `capabilities/main.json`).
//! Arguments and results are the types of [`crate::dto`]. Secret answers are dropped as
//! soon as the engine has them; nothing here logs user data.

use cryptocat_client::{
    check_nickname, check_room_name, Access, Engine, EngineConfig, EngineHandle, Invite, Pin,
    ServerUrl,
};
use tauri::{AppHandle, Emitter, Manager, State};

use crate::dto::{
    CommandError, JoinRequest, Joined, Member, RoomEvent, RoomInvites, ServerChoice, ENGINE_EVENT,
};
use crate::state::{AppState, RelayError, RenewError};

type Result<T> = std::result::Result<T, CommandError>;

async fn handle(state: &AppState, room: &str) -> Result<EngineHandle> {
    state
        .rooms
        .lock()
        .await
        .get(room)
        .cloned()
        .ok_or_else(|| CommandError::new("not_joined", "not in that room"))
}

/// The engine settings for a join request: checks the room name and nickname first (no
/// relay is started for a bad one), then picks the server and how its certificate is
/// checked (the key pins of a link or of the built-in server, or the system's authorities).
pub async fn engine_config(state: &AppState, req: &JoinRequest) -> Result<EngineConfig> {
    let room = check_room_name(&req.room)?;
    let nick = check_nickname(&req.nick)?;
    let access = match &req.server {
        ServerChoice::ThisComputer { local_network } => state
            .local_relay(*local_network)
            .await
            .map_err(|e| match e {
                RelayError::Failed => {
                    CommandError::new("relay_failed", "the built-in server could not start")
                }
                RelayError::InUse => CommandError::new(
                    "relay_in_use",
                    "the built-in server runs with the other network setting for a joined room",
                ),
            })?,
        ServerChoice::Url { url, .. } if Invite::looks_like_link(url) => invite_access(url, &room)?,
        ServerChoice::Url { url, pin } => {
            let url = ServerUrl::parse(url.trim())
                .map_err(|e| CommandError::new("invalid_server", e.to_string()))?;
            let mut access = Access::server(url);
            if let Some(pin) = pin.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                let pin = pin
                    .parse::<Pin>()
                    .map_err(|e| CommandError::new("invalid_pin", e.to_string()))?;
                access.pins.push(pin);
            }
            access
        }
        ServerChoice::Invite { link } => invite_access(link, &room)?,
    };
    Ok(EngineConfig::for_access(&access, &room, &nick)?)
}

/// The access of an invite link for a join request to `room` (which must be the link's).
fn invite_access(link: &str, room: &str) -> Result<Access> {
    let invite = Invite::parse(link)?;
    if invite.room != room {
        return Err(CommandError::new(
            "invalid_invite",
            "the room to join is not the invite link's room",
        ));
    }
    Ok(invite.access)
}

/// Joins a room; events follow as `engine` Tauri events.
#[tauri::command]
pub async fn join(app: AppHandle, state: State<'_, AppState>, req: JoinRequest) -> Result<Joined> {
    let mut config = engine_config(&state, &req).await?;
    crate::sys::prepare_join(&app.state::<crate::settings::SettingsState>(), &mut config).await?;
    let room = check_room_name(&req.room)?;
    if state.rooms.lock().await.contains_key(&room) {
        return Err(CommandError::new("already_joined", "already in that room"));
    }
    let config_pins = config.trust.pins.clone();
    let (handle, mut events) = Engine::start(config).await?;
    let joined = Joined {
        room: handle.room().to_owned(),
        nick: handle.nick().to_owned(),
        fingerprint: handle.fingerprint().to_owned(),
    };
    // On the built-in server: picked as "this computer", or reached through a link that
    // carries its key (our own link, clicked). It then stays up for the room.
    let built_in = match &req.server {
        ServerChoice::ThisComputer { .. } => true,
        _ => state
            .relay_pin()
            .await
            .is_some_and(|pin| pin.is_in(&config_pins)),
    };
    state.rooms.lock().await.insert(joined.room.clone(), handle);
    if built_in {
        state.local_rooms.lock().await.insert(joined.room.clone());
    }
    tracing::info!(target: crate::READY_TARGET, "room joined");
    let room = joined.room.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(event) = events.recv().await {
            let left = matches!(event, cryptocat_client::EngineEvent::Left);
            crate::sys::on_engine_event(&app, &room, &event);
            let payload = RoomEvent {
                room: room.clone(),
                event,
            };
            if app.emit(ENGINE_EVENT, payload).is_err() {
                tracing::warn!("could not forward an engine event to the window");
            }
            if left {
                break;
            }
        }
        let state = app.state::<AppState>();
        state.rooms.lock().await.remove(&room);
        state.local_rooms.lock().await.remove(&room);
    });
    Ok(joined)
}

/// Sends a group text; returns the local id that the `sent` event names.
#[tauri::command]
pub async fn send(state: State<'_, AppState>, room: String, text: String) -> Result<u64> {
    Ok(handle(&state, &room).await?.send(&text)?)
}

/// Sends a private text to a member.
#[tauri::command]
pub async fn send_private(
    state: State<'_, AppState>,
    room: String,
    nick: String,
    text: String,
) -> Result<()> {
    Ok(handle(&state, &room)
        .await?
        .send_private(&nick, &text)
        .await?)
}

/// Asks a member a secret question; the `verification` event gives the result.
#[tauri::command]
pub async fn ask(
    state: State<'_, AppState>,
    room: String,
    nick: String,
    question: Option<String>,
    answer: String,
) -> Result<()> {
    let question = question.filter(|q| !q.trim().is_empty());
    Ok(handle(&state, &room)
        .await?
        .ask_question(&nick, question.as_deref(), &answer)
        .await?)
}

/// Answers a member's secret question.
#[tauri::command]
pub async fn answer(
    state: State<'_, AppState>,
    room: String,
    nick: String,
    answer: String,
) -> Result<()> {
    Ok(handle(&state, &room).await?.answer(&nick, &answer).await?)
}

/// Marks a member verified, or takes the mark away.
#[tauri::command]
pub async fn mark_verified(
    state: State<'_, AppState>,
    room: String,
    nick: String,
    verified: bool,
) -> Result<()> {
    Ok(handle(&state, &room)
        .await?
        .mark_verified(&nick, verified)
        .await?)
}

/// The members who finished their key exchange with us.
#[tauri::command]
pub async fn members(state: State<'_, AppState>, room: String) -> Result<Vec<Member>> {
    Ok(handle(&state, &room).await?.members().await?)
}

/// Leaves a room (the `left` event follows).
#[tauri::command]
pub async fn leave(state: State<'_, AppState>, room: String) -> Result<()> {
    let handle = handle(&state, &room).await?;
    handle.leave().await?;
    state.rooms.lock().await.remove(&room);
    state.local_rooms.lock().await.remove(&room);
    Ok(())
}

/// While the room's connection waits to reconnect, tries at once ("Retry now"); a
/// `connection` event follows.
#[tauri::command]
pub async fn retry_now(state: State<'_, AppState>, room: String) -> Result<()> {
    let handle = handle(&state, &room).await?;
    handle.retry_now()?;
    Ok(())
}

/// The invite panel of a room: one link per way in.
#[tauri::command]
pub async fn invites(state: State<'_, AppState>, room: String) -> Result<RoomInvites> {
    state
        .invites(&room)
        .await
        .ok_or_else(|| CommandError::new("not_joined", "not in that room"))
}

/// Makes the built-in server a new key: the links made before stop working. Refused
/// (`relay_key_in_use`) while a room uses the built-in server.
#[tauri::command]
pub async fn renew_relay_key(state: State<'_, AppState>) -> Result<()> {
    state.renew_relay_key().await.map_err(|e| match e {
        RenewError::InUse => CommandError::new(
            "relay_key_in_use",
            "rooms use the built-in server: leave them first",
        ),
        RenewError::Failed => CommandError::new(
            "relay_key_failed",
            "the built-in server's new key could not be made",
        ),
    })
}

/// Our readable fingerprint in a room.
#[tauri::command]
pub async fn my_fingerprint(state: State<'_, AppState>, room: String) -> Result<String> {
    Ok(handle(&state, &room).await?.fingerprint().to_owned())
}

/// The UI calls this once the join screen is mounted and listening to events: logs
/// "join screen ready" on the [`crate::READY_TARGET`] (the desktop bench times launch to
/// this line; no user data). Returns the join request of the bench's auto-join
/// (`CRYPTOCAT_BENCH_AUTOJOIN=room,nickname`, on the built-in server), which the UI submits
/// as if typed: it goes through `join` and all its checks like any other request.
#[tauri::command]
pub fn ui_ready() -> Option<JoinRequest> {
    tracing::info!(target: crate::READY_TARGET, "join screen ready");
    let spec = std::env::var(AUTOJOIN_ENV).ok()?;
    let (room, nick) = spec.split_once(',')?;
    Some(JoinRequest {
        room: room.to_owned(),
        nick: nick.to_owned(),
        server: ServerChoice::ThisComputer {
            local_network: false,
        },
    })
}

/// The bench's auto-join: `room,nickname`.
pub const AUTOJOIN_ENV: &str = "CRYPTOCAT_BENCH_AUTOJOIN";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use cryptocat_client::{EngineEvent, EngineEvents};
    use std::time::Duration;

    fn req(room: &str, nick: &str, server: ServerChoice) -> JoinRequest {
        JoinRequest {
            room: room.into(),
            nick: nick.into(),
            server,
        }
    }

    async fn next_matching(
        events: &mut EngineEvents,
        f: impl Fn(&EngineEvent) -> bool,
    ) -> EngineEvent {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let e = events.recv().await.expect("engine stopped");
                if f(&e) {
                    return e;
                }
            }
        })
        .await
        .expect("timed out waiting for an event")
    }

    fn this_computer() -> ServerChoice {
        ServerChoice::ThisComputer {
            local_network: false,
        }
    }

    async fn refused(state: &AppState, req: &JoinRequest) -> CommandError {
        engine_config(state, req).await.unwrap_err()
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_anything_starts() {
        let state = AppState::default();
        let e = refused(&state, &req("bad room", "alice", this_computer())).await;
        assert_eq!(e.code, "invalid_room");
        let e = refused(&state, &req("lobby", " \n ", this_computer())).await;
        assert_eq!(e.code, "invalid_nickname");
        let url = |url: &str, pin: Option<&str>| ServerChoice::Url {
            url: url.into(),
            pin: pin.map(Into::into),
        };
        let e = refused(&state, &req("lobby", "alice", url("example.org", None))).await;
        assert_eq!(e.code, "invalid_server");
        assert!(!e.message.contains("example"), "no user data in errors");
        let e = refused(
            &state,
            &req(
                "lobby",
                "alice",
                url("xmpp://example.org", Some("sha256/nope")),
            ),
        )
        .await;
        assert_eq!(e.code, "invalid_pin");
        // A link pasted as the address is read as a link.
        let e = refused(
            &state,
            &req(
                "lobby",
                "alice",
                url("cryptocat://join?v=9&room=lobby", None),
            ),
        )
        .await;
        assert_eq!(e.code, "invalid_invite");
        assert!(e.message.contains("version 9"), "{}", e.message);
        let link = "cryptocat://join?v=1&server=wss://example.org/xmpp-websocket&room=other";
        let e = refused(
            &state,
            &req("lobby", "alice", ServerChoice::Invite { link: link.into() }),
        )
        .await;
        assert_eq!(e.code, "invalid_invite", "the room must be the link's");
        assert!(!state.relay_started().await);
        // A blank pin is no pin; a link's own room is accepted.
        engine_config(
            &state,
            &req("lobby", "a", url("xmpp://example.org", Some(" "))),
        )
        .await
        .unwrap();
        let config = engine_config(
            &state,
            &req("Other", "a", ServerChoice::Invite { link: link.into() }),
        )
        .await
        .unwrap();
        assert_eq!(config.room, "other");
    }

    #[tokio::test]
    async fn unreachable_server_has_its_reason() {
        let state = AppState::default();
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = engine_config(
            &state,
            &req(
                "lobby",
                "alice",
                ServerChoice::Url {
                    url: format!("xmpp://127.0.0.1:{port}"),
                    pin: None,
                },
            ),
        )
        .await
        .unwrap();
        config.connect_timeout = Duration::from_secs(2);
        let e = CommandError::from(Engine::start(config).await.unwrap_err());
        assert_eq!(e.code, "connection_refused");
        assert_eq!(e.seen_key, None);
    }

    /// Alice joins on the built-in server; Bob joins through the room's "this computer"
    /// invite link (pinned TLS on loopback); they exchange a group text and see it
    /// confirmed. A server address with another key's pin is refused as the wrong server,
    /// naming the key it showed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_people_chat_through_the_invite_link() {
        let state = AppState::default();
        let a = engine_config(&state, &req("Lobby", "alice", this_computer()))
            .await
            .unwrap();
        let relay = a.server.clone();
        let (ha, mut ea) = Engine::start(a).await.unwrap();
        assert_eq!(ha.room(), "lobby");
        // As `join` does.
        state.rooms.lock().await.insert("lobby".into(), ha.clone());
        state.local_rooms.lock().await.insert("lobby".into());
        let panel = state.invites("lobby").await.unwrap();
        assert!(panel.built_in && !panel.local_network);
        let [link] = &panel.links[..] else {
            panic!("one link: {panel:?}")
        };
        assert_eq!(link.way, crate::dto::Way::ThisComputer);
        assert!(link.pinned);
        assert!(link
            .join_command
            .starts_with("cryptocat join \"cryptocat://join?v=1&"));
        assert!(link.join_command.ends_with("\" --nick NICK"));
        let b = engine_config(
            &state,
            &req(
                "lobby",
                "bob",
                ServerChoice::Invite {
                    link: link.link.clone(),
                },
            ),
        )
        .await
        .unwrap();
        assert_eq!(b.trust.pins.len(), 1, "checked by the link's key");
        let (hb, mut eb) = Engine::start(b).await.unwrap();
        let in_use = hb.server_in_use().unwrap();
        assert_eq!(in_use.url, relay, "c2s with STARTTLS first");

        let joined =
            next_matching(&mut ea, |e| matches!(e, EngineEvent::MemberJoined { .. })).await;
        let EngineEvent::MemberJoined { member } = joined else {
            unreachable!()
        };
        assert_eq!(member.nick, "bob");
        assert_eq!(member.fingerprint, hb.fingerprint());
        next_matching(&mut ea, |e| {
            matches!(e, EngineEvent::Rekeyed { members: 2, .. })
        })
        .await;
        next_matching(&mut eb, |e| {
            matches!(e, EngineEvent::Rekeyed { members: 2, .. })
        })
        .await;

        let local = ha.send("<script>hi</script>").unwrap();
        let sent = next_matching(&mut ea, |e| matches!(e, EngineEvent::Sent { .. })).await;
        let EngineEvent::Sent { local_id, id } = sent else {
            unreachable!()
        };
        assert_eq!(local_id, local);
        let got = next_matching(&mut eb, |e| matches!(e, EngineEvent::Message { .. })).await;
        assert_eq!(
            got,
            EngineEvent::Message {
                id: id.clone(),
                nick: "alice".into(),
                text: "<script>hi</script>".into(),
                private: false
            }
        );
        next_matching(&mut ea, |e| {
            matches!(e, EngineEvent::Confirmation { confirmed: 1, .. })
        })
        .await;

        // The relay's c2s address in a link with another key's pin: not the server the
        // link names. (Only that address: the loopback WebSocket after it has no TLS, so no
        // pin to check.)
        let pin = state.relay_pin().await.unwrap().to_string();
        let mut other = Invite::parse(&link.link).unwrap();
        other.access.servers.truncate(1);
        other.access.pins = vec![format!("sha256/{}", "A".repeat(43)).parse().unwrap()];
        let mut c = engine_config(
            &state,
            &req(
                "lobby",
                "carol",
                ServerChoice::Invite {
                    link: other.to_link(),
                },
            ),
        )
        .await
        .unwrap();
        c.reconnect = None;
        let e = CommandError::from(Engine::start(c).await.unwrap_err());
        assert_eq!(e.code, "wrong_server");
        assert_eq!(e.seen_key, Some(pin), "names the key the server showed");
        ha.leave().await.unwrap();
        hb.leave().await.unwrap();
    }
}
