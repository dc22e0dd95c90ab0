//! XEP-0198 stream management, client side: the counters and the queue of stanzas the
//! server has not acknowledged yet, as plain state (the client task does the IO).
//!
//! After binding, when the server advertises `<sm xmlns='urn:xmpp:sm:3'/>`, the client
//! sends `<enable resume='true'/>`. From `<enabled/>` on, both sides count the stanzas
//! (`message`, `presence`, `iq`) they handled; `<r/>` asks for the count and `<a h=…/>`
//! gives it. Each stanza we send stays in [`StreamManagement::unacked`] until an `<a/>`
//! covers it. When the connection breaks, the next connection authenticates and sends
//! `<resume previd=… h=…/>` instead of binding: on `<resumed h=…/>` the session (its JID,
//! its rooms) goes on, the server resends what we had not acknowledged and we resend what
//! it had not; on `<failed/>` the client binds a new resource and re-joins as before.

use std::collections::VecDeque;
use std::time::Duration;

use minidom::Element;
use tokio::time::Instant;

use crate::client::MessageId;

/// The stream management namespace.
pub const NS_SM: &str = "urn:xmpp:sm:3";
/// Most stanzas kept waiting for an acknowledgement; past it the connection is treated as
/// broken (the server does not acknowledge).
pub const MAX_UNACKED: usize = 1024;
/// Longest resumption window we believe (`max` is the server's word).
pub const MAX_RESUME: Duration = Duration::from_secs(3600);
/// Longest resumption id we keep.
const MAX_ID_LEN: usize = 256;

/// One stanza sent and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Unacked {
    /// The serialized stanza, as sent.
    pub xml: String,
    /// Our id for a payload message (reported as not sent if the session is lost).
    pub id: Option<MessageId>,
}

/// Too many stanzas wait for an acknowledgement ([`MAX_UNACKED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// `h` is missing or not a number.
    Malformed,
    /// `h` acknowledges more stanzas than were sent.
    TooHigh,
}

/// The client's stream management state for one session.
#[derive(Debug)]
pub struct StreamManagement {
    /// Resumption id, when the server allows resumption.
    pub id: Option<String>,
    /// How long the server keeps the session after a break.
    pub max: Duration,
    /// Stanzas received from the server and handled.
    pub inbound: u32,
    /// The server's last acknowledged count.
    pub acked: u32,
    /// Stanzas sent and not acknowledged, oldest first.
    pub unacked: VecDeque<Unacked>,
    /// When the connection broke.
    pub lost_at: Option<Instant>,
}

/// Whether an element is a stanza (counted under stream management).
pub fn is_stanza(el: &Element) -> bool {
    matches!(el.name(), "message" | "presence" | "iq")
}

/// Whether serialized XML is a stanza.
pub fn is_stanza_xml(xml: &str) -> bool {
    ["<message", "<presence", "<iq"].iter().any(|name| {
        xml.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '>', '/']))
    })
}

/// `<enable/>`.
pub fn enable_xml() -> String {
    format!("<enable xmlns='{NS_SM}' resume='true'/>")
}

/// `<r/>`.
pub fn request_xml() -> String {
    format!("<r xmlns='{NS_SM}'/>")
}

/// Whether the features after authentication offer stream management.
pub fn offered(features: &Element) -> bool {
    features.get_child("sm", NS_SM).is_some()
}

impl StreamManagement {
    /// From the server's `<enabled/>`.
    pub fn from_enabled(enabled: &Element) -> Self {
        let resume = matches!(enabled.attr("resume"), Some("true" | "1"));
        let id = enabled
            .attr("id")
            .filter(|id| resume && !id.is_empty() && id.len() <= MAX_ID_LEN)
            .map(str::to_owned);
        let max = enabled
            .attr("max")
            .and_then(|m| m.parse::<u64>().ok())
            .map_or(Duration::from_secs(60), Duration::from_secs)
            .min(MAX_RESUME);
        Self {
            id,
            max,
            inbound: 0,
            acked: 0,
            unacked: VecDeque::new(),
            lost_at: None,
        }
    }

    /// Records a stanza we sent. `Err` when too many wait for an acknowledgement.
    pub fn sent(&mut self, xml: &str, id: Option<MessageId>) -> Result<(), QueueFull> {
        self.unacked.push_back(Unacked {
            xml: xml.to_owned(),
            id,
        });
        if self.unacked.len() > MAX_UNACKED {
            return Err(QueueFull);
        }
        Ok(())
    }

    /// Records a stanza received.
    pub fn received(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }

    /// `<a h=…/>` (or the `h` of `<resumed/>`): drops what it covers and returns the ids
    /// of the payload messages among it (the server has them now).
    pub fn acknowledged(&mut self, h: Option<&str>) -> Result<Vec<MessageId>, AckError> {
        let h = h
            .and_then(|h| h.parse::<u32>().ok())
            .ok_or(AckError::Malformed)?;
        let newly = usize::try_from(h.wrapping_sub(self.acked)).map_err(|_| AckError::TooHigh)?;
        if newly > self.unacked.len() {
            return Err(AckError::TooHigh);
        }
        let ids = self.unacked.drain(..newly).filter_map(|u| u.id).collect();
        self.acked = h;
        Ok(ids)
    }

    /// `<a h=…/>` answering the server's `<r/>`.
    pub fn answer_xml(&self) -> String {
        format!("<a xmlns='{NS_SM}' h='{}'/>", self.inbound)
    }

    /// `<resume/>`, if this session can still be resumed at `now`.
    pub fn resume_xml(&self, now: Instant) -> Option<String> {
        let id = self.id.as_deref()?;
        let lost = self.lost_at.unwrap_or(now);
        if now.saturating_duration_since(lost) >= self.max {
            return None;
        }
        Some(format!(
            "<resume xmlns='{NS_SM}' previd='{}' h='{}'/>",
            crate::xml::escape(id),
            self.inbound
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(xml: &str) -> StreamManagement {
        StreamManagement::from_enabled(&xml.parse::<Element>().unwrap())
    }

    #[test]
    fn counters_and_acknowledgements() {
        let mut sm = enabled("<enabled xmlns='urn:xmpp:sm:3' id='abc' resume='true' max='30'/>");
        assert_eq!(sm.id.as_deref(), Some("abc"));
        assert_eq!(sm.max, Duration::from_secs(30));
        for i in 0..5 {
            sm.sent(
                &format!("<message id='{i}'/>"),
                Some(MessageId(i.to_string())),
            )
            .unwrap();
        }
        let ids = sm.acknowledged(Some("3")).unwrap();
        assert_eq!(ids, ["0", "1", "2"].map(|i| MessageId(i.into())));
        assert_eq!(sm.unacked.len(), 2);
        assert_eq!(sm.unacked[0].xml, "<message id='3'/>");
        assert_eq!(sm.acknowledged(Some("6")), Err(AckError::TooHigh));
        assert_eq!(sm.acknowledged(Some("x")), Err(AckError::Malformed));
        sm.acknowledged(Some("5")).unwrap();
        assert!(sm.unacked.is_empty());
        sm.received();
        sm.received();
        assert_eq!(sm.answer_xml(), "<a xmlns='urn:xmpp:sm:3' h='2'/>");
    }

    #[test]
    fn counts_wrap_around() {
        let mut sm = enabled("<enabled xmlns='urn:xmpp:sm:3'/>");
        sm.acked = u32::MAX - 1;
        for _ in 0..4 {
            sm.sent("<iq/>", None).unwrap();
        }
        sm.acknowledged(Some("1")).unwrap();
        assert_eq!(sm.unacked.len(), 1);
    }

    #[test]
    fn resumption_needs_an_id_and_time_left() {
        let now = Instant::now();
        let mut sm = enabled("<enabled xmlns='urn:xmpp:sm:3' id='i' resume='true' max='10'/>");
        sm.lost_at = Some(now);
        assert!(sm.resume_xml(now).unwrap().contains("previd='i' h='0'"));
        assert!(sm.resume_xml(now + Duration::from_secs(11)).is_none());
        let no_resume = enabled("<enabled xmlns='urn:xmpp:sm:3' id='i'/>");
        assert!(no_resume.resume_xml(now).is_none());
    }

    #[test]
    fn too_many_unacked_is_an_error() {
        let mut sm = enabled("<enabled xmlns='urn:xmpp:sm:3'/>");
        for _ in 0..MAX_UNACKED {
            sm.sent("<message/>", None).unwrap();
        }
        assert!(sm.sent("<message/>", None).is_err());
        assert!(is_stanza_xml("<presence to='x'/>"));
        assert!(!is_stanza_xml("<presencex/>"));
        assert!(!is_stanza_xml("<r xmlns='urn:xmpp:sm:3'/>"));
    }
}
