//! The typed commands the webview may call (each granted by `capabilities/main.json`).
//! Arguments and results are the types of [`crate::dto`]. Secret answers are dropped as
//! soon as the engine has them; nothing here logs user data.

use cryptocat_client::{
    check_nickname, check_room_name, Engine, EngineConfig, EngineHandle, ServerUrl,
};
use tauri::{AppHandle, Emitter, Manager, State};

use crate::dto::LocalServer;
use crate::dto::{
    CommandError, Event, JoinRequest, Joined, Member, RoomEvent, ServerChoice, ENGINE_EVENT,
};
use crate::state::{AppState, RelayError, LOCAL_DOMAIN};

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
/// relay is started for a bad one), then picks the server.
pub async fn engine_config(state: &AppState, req: &JoinRequest) -> Result<EngineConfig> {
    let room = check_room_name(&req.room)?;
    let nick = check_nickname(&req.nick)?;
    match &req.server {
        ServerChoice::ThisComputer { local_network } => {
            let local = state
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
                })?;
            let mut config = EngineConfig::new(local.url, &room, &nick);
            config.domain = Some(LOCAL_DOMAIN.to_owned());
            config.trust = local.trust;
            Ok(config)
        }
        ServerChoice::Url { url } => {
            let url = ServerUrl::parse(url.trim())
                .map_err(|e| CommandError::new("invalid_server", e.to_string()))?;
            Ok(EngineConfig::new(url, &room, &nick))
        }
    }
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
    let (handle, mut events) = Engine::start(config).await?;
    let joined = Joined {
        room: handle.room().to_owned(),
        nick: handle.nick().to_owned(),
        fingerprint: handle.fingerprint().to_owned(),
    };
    state.rooms.lock().await.insert(joined.room.clone(), handle);
    if matches!(req.server, ServerChoice::ThisComputer { .. }) {
        state.local_rooms.lock().await.insert(joined.room.clone());
    }
    tracing::info!(target: crate::READY_TARGET, "room joined");
    let room = joined.room.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(event) = events.recv().await {
            let left = matches!(event, cryptocat_client::EngineEvent::Left);
            crate::sys::on_engine_event(&app, &room, &event);
            if let Some(event) = Event::from_engine(&event) {
                let payload = RoomEvent {
                    room: room.clone(),
                    event,
                };
                if app.emit(ENGINE_EVENT, payload).is_err() {
                    tracing::warn!("could not forward an engine event to the window");
                }
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
    let members = handle(&state, &room).await?.members().await?;
    Ok(members.iter().map(Member::from).collect())
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

/// How someone else joins a room held on the embedded relay (`None` for a room on
/// another server).
#[tauri::command]
pub async fn local_server(state: State<'_, AppState>, room: String) -> Result<Option<LocalServer>> {
    if !state.local_rooms.lock().await.contains(&room) {
        return Ok(None);
    }
    Ok(state.local_server(&room).await)
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
    use cryptocat_client::EngineEvents;
    use std::time::Duration;

    fn req(room: &str, nick: &str, server: ServerChoice) -> JoinRequest {
        JoinRequest {
            room: room.into(),
            nick: nick.into(),
            server,
        }
    }

    async fn next_matching(events: &mut EngineEvents, f: impl Fn(&Event) -> bool) -> Event {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let e = events.recv().await.expect("engine stopped");
                if let Some(dto) = Event::from_engine(&e) {
                    if f(&dto) {
                        return dto;
                    }
                }
            }
        })
        .await
        .expect("timed out waiting for an event")
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_anything_starts() {
        let state = AppState::default();
        let e = engine_config(
            &state,
            &req(
                "bad room",
                "alice",
                ServerChoice::ThisComputer {
                    local_network: false,
                },
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "invalid_room");
        let e = engine_config(
            &state,
            &req(
                "lobby",
                " \n ",
                ServerChoice::ThisComputer {
                    local_network: false,
                },
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "invalid_nickname");
        let e = engine_config(
            &state,
            &req(
                "lobby",
                "alice",
                ServerChoice::Url {
                    url: "example.org".into(),
                },
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "invalid_server");
        assert!(!e.message.contains("example"), "no user data in errors");
        assert!(!state.relay_started().await);
    }

    #[tokio::test]
    async fn unreachable_server_has_its_code() {
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
                },
            ),
        )
        .await
        .unwrap();
        config.connect_timeout = Duration::from_secs(2);
        let e = CommandError::from(Engine::start(config).await.unwrap_err());
        assert_eq!(e.code, "unreachable");
    }

    /// Two people join the same room on the embedded relay, one as the app does, the
    /// other through the relay's WebSocket as the shown `cryptocat join` command does;
    /// they exchange a group text and see it confirmed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_people_chat_on_the_embedded_relay() {
        let state = AppState::default();
        let a = engine_config(
            &state,
            &req(
                "Lobby",
                "alice",
                ServerChoice::ThisComputer {
                    local_network: false,
                },
            ),
        )
        .await
        .unwrap();
        // Bob joins as `cryptocat join` would with the command the room screen shows: the
        // relay's plain WebSocket on loopback, system roots only (no --ca-cert).
        let share = state.local_server("lobby").await.unwrap();
        let cmd = &share.join_command;
        assert!(
            cmd.contains(&format!("--server {} ", share.websocket_url)),
            "{cmd}"
        );
        assert!(cmd.ends_with("--room lobby --nick NICK"), "{cmd}");
        let mut b = EngineConfig::new(
            ServerUrl::parse(&share.websocket_url).unwrap(),
            "lobby",
            "bob",
        );
        b.trust = cryptocat_client::TrustConfig::system();
        let (ha, mut ea) = Engine::start(a).await.unwrap();
        let (hb, mut eb) = Engine::start(b).await.unwrap();
        assert_eq!(ha.room(), "lobby");

        let joined = next_matching(&mut ea, |e| matches!(e, Event::MemberJoined { .. })).await;
        let Event::MemberJoined { member } = joined else {
            unreachable!()
        };
        assert_eq!(member.nick, "bob");
        assert_eq!(member.fingerprint, hb.fingerprint());
        assert!(!member.safety_qr.is_empty());
        next_matching(&mut ea, |e| matches!(e, Event::Rekeyed { members: 2, .. })).await;
        next_matching(&mut eb, |e| matches!(e, Event::Rekeyed { members: 2, .. })).await;

        let local = ha.send("<script>hi</script>").unwrap();
        let sent = next_matching(&mut ea, |e| matches!(e, Event::Sent { .. })).await;
        let Event::Sent { local_id, id } = sent else {
            unreachable!()
        };
        assert_eq!(local_id, local);
        let got = next_matching(&mut eb, |e| matches!(e, Event::Message { .. })).await;
        assert_eq!(
            got,
            Event::Message {
                id: id.clone(),
                nick: "alice".into(),
                text: "<script>hi</script>".into(),
                private: false
            }
        );
        let confirmed = next_matching(&mut ea, |e| {
            matches!(e, Event::Confirmation { confirmed: 1, .. })
        })
        .await;
        assert_eq!(
            confirmed,
            Event::Confirmation {
                id,
                confirmed: 1,
                of: 1
            }
        );
        ha.leave().await.unwrap();
        hb.leave().await.unwrap();
    }
}
